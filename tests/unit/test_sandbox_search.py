"""The sandbox EHR's search: its own parameter table and result controls, parsed by the gateway's shared
value parser, and evaluated over resource dicts (range semantics for dates at any precision)."""

from __future__ import annotations

from typing import Any

import pytest

from service.domain.errors import BadRequest
from service.fhir.search import Include
from service.sandbox.search import MAX_COUNT, SEARCH_PARAMS, matches, parse_query, reference_key

PATIENT: dict[str, Any] = {
    "resourceType": "Patient",
    "id": "p1",
    "meta": {"lastUpdated": "2026-01-05T10:00:00.000Z"},
    "identifier": [{"system": "urn:mrn", "value": "M-1"}, {"value": "LOCAL-7"}],
    "name": [{"family": "Núñez", "given": ["José"]}],
    "gender": "male",
    "birthDate": "1990-04-12",
}
ENCOUNTER: dict[str, Any] = {
    "resourceType": "Encounter",
    "id": "e1",
    "status": "finished",
    "subject": {"reference": "Patient/p1"},
    "serviceProvider": {"reference": "https://ehr.example/fhir/Organization/o1"},
    "period": {"start": "2026-01-05T10:30:00+01:00"},
}


def found(resource: dict[str, Any], *items: tuple[str, str]) -> bool:
    resource_type = resource["resourceType"]
    query = parse_query(resource_type, items, SEARCH_PARAMS[resource_type])
    return all(matches(param, criterion, resource) for param, criterion in query.criteria)


@pytest.mark.parametrize(
    ("value", "hit"),
    [
        ("1990", True),
        ("1990-04", True),
        ("1990-04-12", True),
        ("1990-04-13", False),
        ("1990-04-12T10:00Z", False),  # a day is not within a minute
        ("ge1990-04-12", True),
        ("ge1990-04-13", False),
        ("gt1990-04-11", True),
        ("gt1990-04", False),  # the day does not run past the month
        ("le1990-04-12", True),
        ("lt1990-04-12", False),
        ("lt1990-04-13", True),
        ("ne1990-05", True),
        ("ne1990", False),
    ],
)
def test_dates_compare_as_ranges_at_their_precision(value, hit):
    assert found(PATIENT, ("birthdate", value)) is hit


def test_a_datetime_with_a_zone_and_last_updated():
    assert found(ENCOUNTER, ("date", "2026-01-05T09:30:00Z"))  # the same instant as +01:00 10:30
    assert not found(ENCOUNTER, ("date", "2026-01-05T10:30:00Z"))
    assert found(PATIENT, ("_lastUpdated", "gt2026-01-04"))
    assert not found(PATIENT, ("_lastUpdated", "gt2026-01-05T10:00:00.000Z"))


@pytest.mark.parametrize(
    ("key", "value", "hit"),
    [
        ("identifier", "urn:mrn|M-1", True),
        ("identifier", "M-1", True),
        ("identifier", "urn:other|M-1", False),
        ("identifier", "urn:mrn|", True),
        ("identifier", "|LOCAL-7", True),
        ("identifier", "|M-1", False),  # M-1 has a system
        ("gender", "male", True),
        ("gender", "http://hl7.org/fhir/administrative-gender|male", True),  # a code's implicit system
        ("gender:not", "female", True),
        ("gender:not", "male", False),
        ("_id", "p1,p2", True),
        ("_id:not", "p1", False),
        ("name", "jose", True),  # accents and case folded
        ("name", "NUN", True),
        ("name:contains", "ñe", True),
        ("name:exact", "josé", False),  # exact is exact
        ("name:exact", "José", True),
        ("family", "jose", False),
        ("birthdate:missing", "false", True),
        ("birthdate:missing", "true", False),
    ],
)
def test_tokens_strings_and_missing(key, value, hit):
    assert found(PATIENT, (key, value)) is hit


@pytest.mark.parametrize(
    ("key", "value", "hit"),
    [
        ("patient", "p1", True),
        ("subject", "p1", True),  # any type
        ("subject", "Patient/p1", True),
        ("subject", "https://ehr.example/fhir/Patient/p1", True),
        ("subject", "Practitioner/p1", False),
        ("subject:Practitioner", "p1", False),
        ("service-provider", "o1", True),
        ("service-provider", "Organization/o1", True),
        ("status", "finished,planned", True),
    ],
)
def test_references(key, value, hit):
    assert found(ENCOUNTER, (key, value)) is hit


def test_repeated_parameters_are_and():
    assert not found(ENCOUNTER, ("status", "finished"), ("status", "planned"))


def test_reference_key():
    assert reference_key("Patient/p1") == "Patient/p1"
    assert reference_key("https://ehr.example/fhir/Patient/p1/_history/3") == "Patient/p1"
    assert reference_key("Immunization/x") is None  # not a type served here
    assert reference_key("p1") is None


def test_the_sandbox_controls():
    supported = SEARCH_PARAMS["Task"]
    query = parse_query(
        "Task",
        [
            ("_count", "1000"),
            ("_offset", "20"),
            ("_sort", "-_lastUpdated"),
            ("_include", "Task:focus:ServiceRequest"),
            ("status", "requested"),
        ],
        supported,
        supported_includes=SEARCH_PARAMS,
    )
    assert (query.count, query.offset, query.descending) == (MAX_COUNT, 20, True)
    assert query.includes == [Include("Task", "focus", "ServiceRequest")]
    assert query.echo == [
        ("_sort", "-_lastUpdated"),
        ("_include", "Task:focus:ServiceRequest"),
        ("status", "requested"),
    ]
    for bad in (
        [("_count", "-1")],
        [("_summary", "true")],
        [("_sort", "authored-on")],
        [("status", "")],
        [("status:contains", "x")],
        [("_include", "Task:status")],
    ):
        with pytest.raises(BadRequest):
            parse_query("Task", bad, supported, supported_includes=SEARCH_PARAMS)


def test_unknown_parameters_are_named_together_unless_lenient():
    items = [("shoe-size", "44"), ("hat", "7"), ("status", "requested")]
    with pytest.raises(BadRequest) as caught:
        parse_query("Task", items, SEARCH_PARAMS["Task"])
    assert "hat, shoe-size" in caught.value.detail
    assert len(parse_query("Task", items, SEARCH_PARAMS["Task"], lenient=True).criteria) == 1
