"""The kick-off parameters as a typed request (pure): what is honoured, what is a 400 naming the
parameter, what lenient handling skips and notes."""

from __future__ import annotations

from typing import Any

import pytest

from service.bulk import params
from service.domain.errors import BadRequest, Forbidden
from service.fhir.search_params import SEARCH_PARAMS

ALL = list(SEARCH_PARAMS)


def parse(*items: tuple[str, str], lenient: bool = False, readable: list[str] | None = None) -> params.ExportRequest:
    return params.parse(list(items), level="system", readable=ALL if readable is None else readable, lenient=lenient)


def refused(*items: tuple[str, str], readable: list[str] | None = None) -> str:
    with pytest.raises(BadRequest) as raised:
        parse(*items, readable=readable)
    return str(raised.value.errors[0]["expression"])


def test_defaults_are_every_readable_type_as_fhir_ndjson():
    request = parse()
    assert request.types == ALL and request.since is None and request.filters == {}
    assert request.output_format == "application/fhir+ndjson" and request.notes == []
    assert parse(readable=["Patient", "Encounter"]).types == [t for t in ALL if t in ("Patient", "Encounter")]


def test_type_is_a_comma_list_or_repeated_without_duplicates():
    assert parse(("_type", "Encounter, Patient"), ("_type", "Goal,Encounter")).types == ["Encounter", "Patient", "Goal"]


@pytest.mark.parametrize("value", ["application/fhir+ndjson", "application/ndjson", "ndjson"])
def test_the_ndjson_output_formats(value):
    assert parse(("_outputFormat", value)).output_format == "application/fhir+ndjson"


@pytest.mark.parametrize(
    ("items", "named"),
    [
        ((("_outputFormat", "text/csv"),), "_outputFormat"),
        ((("_outputFormat", "application/fhir+json"),), "_outputFormat"),
        ((("_since", "2026-01-01"),), "_since"),
        ((("_since", "2026-01-01T00:00:00"),), "_since"),  # no zone
        ((("_since", "2026-13-01T00:00:00Z"),), "_since"),
        ((("_since", "2026-01-01T00:00:00Z"), ("_since", "2026-02-01T00:00:00Z")), "_since"),
        ((("_type", "MedicationRequest"),), "_type"),
        ((("_type", "Nonsense"),), "_type"),
        ((("_typeFilter", "Encounter?nonsense=1"),), "_typeFilter"),
        ((("_typeFilter", "Encounter?status:fuzzy=finished"),), "_typeFilter"),
        ((("_typeFilter", "Encounter"),), "_typeFilter"),
        ((("_typeFilter", "Encounter?"),), "_typeFilter"),
        ((("_typeFilter", "Encounter?_count=5"),), "_typeFilter"),
        ((("_typeFilter", "Encounter?_include=Encounter:subject"),), "_typeFilter"),
        ((("_typeFilter", "Unknown?status=x"),), "_typeFilter"),
        ((("_typeFilter", "Encounter?date=notadate"),), "_typeFilter"),
        ((("_type", "Patient"), ("_typeFilter", "Encounter?status=finished")), "_typeFilter"),
        ((("_elements", "id"),), "_elements"),
        ((("patient", "Patient/1"),), "patient"),
        ((("includeAssociatedData", "LatestProvenanceResources"),), "includeAssociatedData"),
        ((("_until", "2026-01-01T00:00:00Z"),), "_until"),
        ((("surprise", "1"),), "surprise"),
    ],
)
def test_what_cannot_be_honoured_is_a_400_naming_the_parameter(items, named):
    assert refused(*items) == named


def test_a_type_the_scopes_do_not_allow_is_forbidden():
    with pytest.raises(Forbidden):
        parse(("_type", "Encounter"), readable=["Patient"])


def test_type_filters_are_or_ed_per_type_and_run_through_the_search_engine():
    request = parse(
        ("_typeFilter", "Encounter?status=finished,Encounter?date=ge2026-01-01&status=in-progress"),
        ("_typeFilter", "Patient?gender=female"),
    )
    assert request.filters == {
        "Encounter": ["status=finished", "date=ge2026-01-01&status=in-progress"],
        "Patient": ["gender=female"],
    }
    [first, second] = params.queries(request, "Encounter")
    assert [c.param for c in first.criteria] == ["status"]
    assert sorted(c.param for c in second.criteria) == ["date", "status"]
    # a comma inside a query (a search OR) stays in that query
    ored = parse(("_typeFilter", "Encounter?status=finished,in-progress"))
    assert ored.filters == {"Encounter": ["status=finished,in-progress"]}
    assert len(params.queries(ored, "Encounter")[0].criteria[0].values) == 2


def test_lenient_handling_skips_and_notes():
    request = parse(
        ("_type", "Encounter,Nonsense"),
        ("_typeFilter", "Encounter?nonsense=1"),
        ("_elements", "id"),
        lenient=True,
    )
    assert request.types == ["Encounter"] and request.filters == {}
    assert len(request.notes) == 3
    assert any("_elements" in n for n in request.notes) and any("_typeFilter" in n for n in request.notes)
    # what lenient handling cannot excuse: a format or instant that means nothing
    with pytest.raises(BadRequest):
        parse(("_outputFormat", "text/csv"), lenient=True)


def test_since_round_trips_as_an_instant():
    request = parse(("_since", "2026-03-01T10:00:00+02:00"))
    assert request.since_moment is not None and request.since_moment.isoformat() == "2026-03-01T08:00:00+00:00"
    assert params.ExportRequest.from_json(request.to_json()) == request


def test_a_parameters_body_flattens_to_pairs():
    body = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "_type", "valueString": "Patient"},
            {"name": "_since", "valueInstant": "2026-01-01T00:00:00Z"},
            {"name": "_outputFormat", "valueCode": "ndjson"},
        ],
    }
    assert params.from_parameters(body) == [
        ("_type", "Patient"),
        ("_since", "2026-01-01T00:00:00Z"),
        ("_outputFormat", "ndjson"),
    ]
    wrong: list[Any] = [
        {"resourceType": "Bundle"},
        {"resourceType": "Parameters", "parameter": [{"valueString": "x"}]},
        [],
    ]
    for bad in wrong:
        with pytest.raises(BadRequest):
            params.from_parameters(bad)
    with pytest.raises(BadRequest):
        params.from_parameters({"resourceType": "Parameters", "parameter": [{"name": "patient", "valueReference": {}}]})
