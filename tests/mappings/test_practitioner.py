"""Peer specialist <-> Practitioner and PractitionerRole."""

from datetime import date, timedelta
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mappings import practitioner
from mappings.context import MappingContext, MappingError
from mappings.models import Practitioner, PractitionerRole
from mappings.profiles import load_overlay
from service.domain import LivedExperience, PeerSpecialist, PeerSpecialistFields, Program
from tests.mappings.support import PROGRAM, assert_golden, context, names, record, safe_text

NUCC_PEER = {"system": "http://nucc.org/provider-taxonomy", "code": "175T00000X", "display": "Peer Specialist"}
FULL = {
    "name": {"family": "Rivera", "given": ["Ana", "Luz"], "suffix": ["CPRS"]},
    "certification": {"state": "or", "number": "PSS-20417", "issued_on": "2024-03-01", "expires_on": "2026-02-28"},
    "lived_experience": ["co-occurring", "veteran"],
    "languages": ["en", "es-MX"],
    "specialties": ["housing navigation", "WRAP facilitation"],
    "weekly_capacity": 18,
    "active": True,
    "npi": "1234567893",
}


def _specialist(**changes: Any) -> PeerSpecialist:
    return record(PeerSpecialist, "specialist-1", **{**FULL, **changes})


def test_golden_practitioner():
    resource = practitioner.to_fhir(_specialist(), context())
    Practitioner.model_validate(resource)
    assert resource["meta"]["profile"] == ["http://hl7.org/fhir/us/core/StructureDefinition/us-core-practitioner"]
    qualification = resource["qualification"][0]
    assert qualification["code"]["coding"] == [NUCC_PEER]
    assert qualification["identifier"] == [
        {"system": "https://peer.example.org/ids/certification/OR", "value": "PSS-20417"}
    ]
    assert qualification["period"] == {"start": "2024-03-01", "end": "2026-02-28"}
    assert {"system": "http://hl7.org/fhir/sid/us-npi", "value": "1234567893"} in resource["identifier"]
    assert [c["coding"][0]["code"] for c in resource["communication"]] == ["en", "es-MX"]
    assert_golden("practitioner", resource)


def test_golden_practitioner_role():
    program = Program.model_validate(
        {**PROGRAM.model_dump(), "telecom": [{"system": "phone", "value": "+1 503 555 0100", "use": "work"}]}
    )
    ctx = MappingContext(program, load_overlay("generic"))
    resource = practitioner.role_to_fhir(_specialist(active=False), ctx)
    PractitionerRole.model_validate(resource)
    assert resource["meta"]["profile"] == ["http://hl7.org/fhir/us/core/StructureDefinition/us-core-practitionerrole"]
    assert resource["practitioner"] == ctx.reference("specialist", "specialist-1")
    assert resource["organization"]["reference"] == ctx.reference("program", "program-1")["reference"]
    assert resource["code"] == [{"coding": [NUCC_PEER]}] and resource["specialty"] == [{"coding": [NUCC_PEER]}]
    assert resource["active"] is False
    assert resource["telecom"] == [{"system": "phone", "value": "+1 503 555 0100", "use": "work"}]
    assert_golden("practitioner_role", resource)


def test_two_overlays_give_different_valid_output():
    specialist = _specialist()
    generic, epic = practitioner.to_fhir(specialist, context()), practitioner.to_fhir(specialist, context("epic"))
    assert generic["meta"]["profile"] != epic["meta"]["profile"]
    assert epic["meta"]["profile"][0].endswith("us-core-practitioner|3.1.1")
    role = practitioner.role_to_fhir(specialist, context("epic"))
    assert role["meta"]["profile"][0].endswith("us-core-practitionerrole|3.1.1")
    for resource in (generic, epic):
        Practitioner.model_validate(resource)
    PractitionerRole.model_validate(role)


def test_mapping_twice_is_byte_identical():
    specialist = _specialist()
    assert orjson.dumps(practitioner.to_fhir(specialist, context())) == orjson.dumps(
        practitioner.to_fhir(specialist, context())
    )
    assert orjson.dumps(practitioner.role_to_fhir(specialist, context())) == orjson.dumps(
        practitioner.role_to_fhir(specialist, context())
    )


def _npi(prefix: str) -> str:
    """A valid NPI: the Luhn check digit over 80840 + the first nine digits."""
    digits = [int(c) for c in "80840" + prefix]
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2 == 0:
            d = d * 2 - 9 if d * 2 > 9 else d * 2
        total += d
    return prefix + str((10 - total % 10) % 10)


certifications = st.builds(
    lambda state, number, issued, days: {
        "state": state,
        "number": number,
        "issued_on": issued.isoformat(),
        "expires_on": (issued + timedelta(days=days)).isoformat(),
    },
    st.sampled_from(["OR", "WA", "CA", "NY", "PR"]),
    safe_text,
    st.dates(min_value=date(2015, 1, 1), max_value=date(2025, 1, 1)),
    st.integers(min_value=1, max_value=1500),
)
specialists = st.fixed_dictionaries(
    {
        "name": names,
        "certification": certifications,
        "lived_experience": st.lists(st.sampled_from(list(LivedExperience)), unique=True, max_size=4),
        "languages": st.lists(st.sampled_from(["en", "es", "vi", "zh-Hant", "so"]), unique=True, min_size=1),
        "specialties": st.lists(safe_text, max_size=3),
        "weekly_capacity": st.integers(min_value=0, max_value=100),
        "active": st.booleans(),
        "npi": st.one_of(st.none(), st.integers(min_value=100_000_000, max_value=299_999_999).map(str).map(_npi)),
    }
)


@settings(max_examples=60, deadline=None)
@given(specialists)
def test_round_trip_keeps_every_field(fields: dict[str, Any]):
    specialist = record(PeerSpecialist, "specialist-9", **fields)
    back = practitioner.from_fhir(practitioner.to_fhir(specialist, context()), context())
    assert back == PeerSpecialistFields.model_validate(
        specialist.model_dump(include=set(PeerSpecialistFields.model_fields))
    )


def test_outside_practitioner_with_unknown_extensions_and_sparse_elements():
    resource = {
        "resourceType": "Practitioner",
        "id": "ext-1",
        "extension": [{"url": "http://example.org/fhir/StructureDefinition/unknown", "valueString": "x"}],
        "name": [{"use": "usual", "family": "Okafor", "given": ["Chidi"]}],
        "qualification": [
            {"code": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0360", "code": "MD"}]}},
            {
                "identifier": [{"system": "https://peer.example.org/ids/certification/WA", "value": "CPC-9"}],
                "code": {"coding": [{"system": "http://nucc.org/provider-taxonomy", "code": "175T00000X"}]},
                "period": {"start": "2023-05-01", "end": "2025-04-30"},
            },
        ],
    }
    fields = practitioner.from_fhir(resource, context())
    assert fields.name.family == "Okafor"
    assert fields.certification.state == "WA"  # from the identifier system when no issuer is given
    assert fields.certification.number == "CPC-9"
    assert fields.languages == ["en"]
    assert (fields.lived_experience, fields.specialties, fields.weekly_capacity, fields.npi) == ([], [], 20, None)
    assert fields.active is True


QUALIFICATION: dict[str, Any] = {
    "identifier": [{"value": "PSS-1"}],
    "code": {"coding": [{"system": "http://nucc.org/provider-taxonomy", "code": "175T00000X"}]},
    "period": {"start": "2024-01-01", "end": "2026-01-01"},
    "issuer": {"display": "OR"},
}
LIVED = "https://peer.example.org/ids/StructureDefinition/peer-lived-experience"


@pytest.mark.parametrize(
    ("change", "element"),
    [
        ({"name": [{"family": 5}]}, "Practitioner.name[0].family"),
        ({"name": []}, "Practitioner.name"),
        ({"qualification": []}, "Practitioner.qualification"),
        (
            {"qualification": [{**QUALIFICATION, "period": {"start": "2024-01-01"}}]},
            "Practitioner.qualification[0].period.end",
        ),
        ({"qualification": [{**QUALIFICATION, "identifier": []}]}, "Practitioner.qualification[0].identifier"),
        ({"qualification": [{**QUALIFICATION, "issuer": None}]}, "Practitioner.qualification[0].issuer.display"),
        ({"qualification": [{**QUALIFICATION, "issuer": {"display": "ZZ"}}]}, "Practitioner (certification.state)"),
        ({"extension": [{"url": LIVED, "valueCode": "astronaut"}]}, "Practitioner.extension[0].valueCode"),
        ({"birthDate": "1975-13-40"}, "Practitioner.birthDate"),
    ],
)
def test_invalid_inbound_practitioner_names_the_element(change, element):
    resource: dict[str, Any] = {
        "resourceType": "Practitioner",
        "name": [{"family": "Okafor"}],
        "qualification": [QUALIFICATION],
    }
    resource.update(change)
    resource["qualification"] = [{k: v for k, v in q.items() if v is not None} for q in resource["qualification"]]
    with pytest.raises(MappingError) as caught:
        practitioner.from_fhir(resource, context())
    assert caught.value.element == element
