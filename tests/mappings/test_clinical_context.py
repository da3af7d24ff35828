"""A referral's clinical context, pure: keys, served ids, aliases, reference rewriting."""

from __future__ import annotations

from typing import Any

from mappings.clinical_context import aliases, clinic_key, kept, patient_references, rewrite, served_id

SYSTEM = "https://peer.example.org/ids"


def test_clinic_key_prefers_id_then_identifier_then_full_url_then_content():
    assert clinic_key({"id": "c1", "identifier": [{"system": "s", "value": "v"}]}, "urn:uuid:x") == "id:c1"
    assert clinic_key({"identifier": [{"system": "s", "value": "v"}]}, "urn:uuid:x") == "identifier:s|v"
    assert clinic_key({"identifier": [{"value": "v"}]}, "urn:uuid:x") == "url:urn:uuid:x"
    one, other = clinic_key({"a": 1, "b": 2}, None), clinic_key({"b": 2, "a": 1}, None)
    assert one == other and one.startswith("sha256:")
    assert clinic_key({"a": 2}, None) != one


def test_served_id_is_deterministic_per_referral_type_and_key():
    first = served_id(SYSTEM, "r1", "Condition", "id:c1")
    assert first == served_id(SYSTEM, "r1", "Condition", "id:c1")
    assert first != served_id(SYSTEM, "r2", "Condition", "id:c1")
    assert first != served_id(SYSTEM, "r1", "Observation", "id:c1")


def test_aliases():
    resource = {"resourceType": "Condition", "id": "c1"}
    assert aliases(resource, "https://clinic.example/fhir/Condition/c1") == [
        "https://clinic.example/fhir/Condition/c1",
        "Condition/c1",
    ]
    assert aliases({"resourceType": "Condition"}, "urn:uuid:1") == ["urn:uuid:1"]


def test_rewrite_and_kept():
    resource: dict[str, Any] = {
        "resourceType": "Condition",
        "id": "c1",
        "meta": {"versionId": "3", "lastUpdated": "2026-01-01T00:00:00Z", "profile": ["p"]},
        "subject": {"reference": "urn:uuid:p", "display": "X"},
        "evidence": [{"detail": [{"reference": "Observation/o1"}, {"reference": "Observation/elsewhere"}]}],
    }
    served = {"urn:uuid:p": "Patient/P", "Observation/o1": "Observation/O"}
    body = kept(resource, "C", served)
    assert body["id"] == "C" and body["meta"] == {"profile": ["p"]}
    assert body["subject"] == {"reference": "Patient/P", "display": "X"}
    assert body["evidence"][0]["detail"] == [{"reference": "Observation/O"}, {"reference": "Observation/elsewhere"}]
    assert list(body)[:3] == ["resourceType", "id", "meta"]
    assert resource["subject"]["reference"] == "urn:uuid:p"  # the sent resource is left as it was
    assert rewrite([{"reference": "x"}], {}) == [{"reference": "x"}]


def test_patient_references():
    assert patient_references({"subject": {"reference": "Patient/a"}, "beneficiary": {"reference": "Patient/b"}}) == [
        ("subject", "Patient/a"),
        ("beneficiary", "Patient/b"),
    ]
    assert patient_references({"subject": {"display": "nobody"}}) == []
