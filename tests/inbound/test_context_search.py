"""A referral's clinical context of every kept patient-compartment type: kept, linked from the
ServiceRequest, searchable by patient (the cases themselves are in tests/api/test_fhir_search.py)."""

from __future__ import annotations

import copy
from typing import Any

from tests.api.test_fhir_write import post, transaction_bundle

PATIENT_URL = "urn:uuid:6a1a6f0e-0000-4000-8000-000000000001"
SCT = "http://snomed.info/sct"
CONDITION_CATEGORY = "http://hl7.org/fhir/us/core/CodeSystem/condition-category"


def _supporting() -> list[dict[str, Any]]:
    subject = {"reference": PATIENT_URL}
    return [
        {
            "resourceType": "Condition",
            "identifier": [{"system": "urn:example:clinic:conditions", "value": "C-1"}],
            "clinicalStatus": {
                "coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]
            },
            "category": [
                {
                    "coding": [
                        {
                            "system": "http://hl7.org/fhir/us/core/CodeSystem/condition-category",
                            "code": "health-concern",
                        }
                    ]
                }
            ],
            "code": {"coding": [{"system": SCT, "code": "733423003", "display": "Food insecurity"}]},
            "subject": subject,
        },
        {
            "resourceType": "Observation",
            "identifier": [{"system": "urn:example:clinic:observations", "value": "O-1"}],
            "status": "final",
            "category": [
                {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "survey"}]}
            ],
            "code": {"coding": [{"system": "http://loinc.org", "code": "88124-3"}]},
            "subject": subject,
            "valueCodeableConcept": {"coding": [{"system": "http://loinc.org", "code": "LA19952-3"}]},
        },
        {
            "resourceType": "QuestionnaireResponse",
            "identifier": {"system": "urn:example:clinic:qr", "value": "Q-1"},
            "status": "completed",
            "subject": subject,
        },
        {
            "resourceType": "Coverage",
            "identifier": [{"system": "urn:example:payer", "value": "M-1"}],
            "status": "active",
            "beneficiary": subject,
            "payor": [{"display": "State Medicaid"}],
        },
        {
            "resourceType": "RelatedPerson",
            "identifier": [{"system": "urn:example:clinic:related", "value": "R-1"}],
            "patient": subject,
            "name": [{"family": "Example", "given": ["Sam"]}],
        },
        {
            "resourceType": "Immunization",
            "identifier": [{"system": "urn:example:clinic:immunizations", "value": "I-1"}],
            "status": "completed",
            "vaccineCode": {"coding": [{"system": "http://hl7.org/fhir/sid/cvx", "code": "20"}]},
            "patient": subject,
            "occurrenceDateTime": "2024-06-15",
        },
    ]


def context_bundle() -> dict[str, Any]:
    """The clinic's referral transaction with one supporting resource of each searchable context type."""
    bundle = transaction_bundle()
    assert bundle["entry"][0]["fullUrl"] == PATIENT_URL
    for number, resource in enumerate(_supporting()):
        bundle["entry"].append(
            {
                "fullUrl": f"urn:uuid:6a1a6f0e-0000-4000-8000-0000000001{number:02d}",
                "resource": copy.deepcopy(resource),
                "request": {"method": "POST", "url": resource["resourceType"]},
            }
        )
    return bundle


async def test_every_kept_type_is_linked_and_read_back(client):
    response = await post(client, "", context_bundle())
    assert response.status_code == 200, response.text
    entries = [e["resource"] for e in response.json()["entry"]]
    sr, kept = entries[1], entries[3:]
    assert {r["resourceType"] for r in kept} == {s["resourceType"] for s in _supporting()}
    assert {i["reference"] for i in sr["supportingInfo"]} == {f"{r['resourceType']}/{r['id']}" for r in kept}
    patient = entries[0]["id"]
    for resource in kept:
        read = await client.get(f"/fhir/{resource['resourceType']}/{resource['id']}")
        assert read.status_code == 200, read.text
        found = await client.get(f"/fhir/{resource['resourceType']}", params={"patient": patient})
        assert [e["resource"]["id"] for e in found.json()["entry"]] == [resource["id"]]
