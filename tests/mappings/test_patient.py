"""Participant <-> Patient."""

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mappings import patient
from mappings.context import MappingError
from mappings.models import Patient
from service.domain import Participant, ParticipantFields
from tests.mappings.support import assert_golden, context, names, past_dates, record, safe_text

FULL = {
    "name": {"family": "Example", "given": ["Robin", "Lee"], "prefix": ["Mx."]},
    "birth_date": "1988-07-14",
    "gender": "other",
    "telecom": [
        {"system": "phone", "value": "+1 503 555 0142", "use": "mobile"},
        {"system": "email", "value": "robin@example.org"},
    ],
    "address": {"line": ["12 Harbor Way"], "city": "Portland", "state": "OR", "postal_code": "97201"},
    "language": "es",
    "identifiers": [
        {"type": "MR", "system": "https://hospital.example.org/mrn", "value": "H-42", "assigner": "General Hospital"},
        {"type": "MA", "system": "https://medicaid.oregon.gov/id", "value": "OR123"},
    ],
}


def test_golden_patient():
    resource = patient.to_fhir(record(Participant, "participant-1", **FULL), context())
    Patient.model_validate(resource)
    assert resource["meta"]["profile"] == ["http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient"]
    assert_golden("patient", resource)


def test_two_overlays_give_different_valid_output():
    participant = record(Participant, "participant-1", **FULL)
    generic = patient.to_fhir(participant, context("generic"))
    oracle = patient.to_fhir(participant, context("oracle"))
    epic = patient.to_fhir(participant, context("epic"))
    assert "communication" in generic and "communication" not in oracle
    assert epic["meta"]["profile"][0].endswith("|3.1.1")
    for resource in (generic, oracle, epic):
        Patient.model_validate(resource)


def test_mapping_twice_is_byte_identical():
    import orjson

    participant = record(Participant, "participant-1", **FULL)
    assert orjson.dumps(patient.to_fhir(participant, context())) == orjson.dumps(
        patient.to_fhir(participant, context())
    )


participants = st.builds(
    lambda name, born, gender, language, mrn: {
        "name": name,
        "birth_date": born,
        "gender": gender,
        "language": language,
        "identifiers": [{"type": "MR", "system": "https://hospital.example.org/mrn", "value": mrn}],
    },
    names,
    past_dates,
    st.sampled_from(["male", "female", "other", "unknown"]),
    st.sampled_from(["en", "es", "vi"]),
    safe_text,
)


@settings(max_examples=60, deadline=None)
@given(participants)
def test_round_trip_keeps_every_field(fields: dict[str, Any]):
    participant = record(Participant, "participant-9", **fields)
    back = patient.from_fhir(patient.to_fhir(participant, context()), context())
    assert back == ParticipantFields.model_validate(participant.model_dump(include=set(ParticipantFields.model_fields)))


def test_hospital_patient_with_unknown_extensions_and_sparse_elements():
    resource = {
        "resourceType": "Patient",
        "id": "hosp-1",
        "extension": [{"url": "http://example.org/fhir/StructureDefinition/unknown", "valueString": "x"}],
        "identifier": [
            {
                "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]},
                "system": "urn:oid:1.2.3.4",
                "value": "MRN-77",
            }
        ],
        "name": [{"use": "usual", "given": ["Sam"], "family": "Taylor"}],
        "gender": "male",
        "birthDate": "1975-03-02",
        "telecom": [{"system": "fax", "value": "1"}],
    }
    fields = patient.from_fhir(resource, context())
    assert fields.name.family == "Taylor"
    assert fields.mrn("urn:oid:1.2.3.4") == "MRN-77"
    assert fields.telecom == []
    assert fields.language == "en"


@pytest.mark.parametrize(
    ("change", "element"),
    [
        ({"birthDate": "1975-13-40"}, "Patient.birthDate"),
        ({"name": [{"family": 5}]}, "Patient.name[0].family"),
        ({"birthDate": None}, "Patient.birthDate"),
        ({"gender": "robot"}, "Patient (gender)"),
        ({"name": []}, "Patient.name"),
    ],
)
def test_invalid_inbound_patient_names_the_element(change, element):
    resource = {"resourceType": "Patient", "name": [{"family": "Taylor"}], "gender": "male", "birthDate": "1975-03-02"}
    resource.update(change)
    resource = {k: v for k, v in resource.items() if v is not None}
    with pytest.raises(MappingError) as caught:
        patient.from_fhir(resource, context())
    assert caught.value.element == element
