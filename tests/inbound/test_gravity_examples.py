"""The Gravity SDOH Clinical Care referral examples (tests/fixtures/gravity, see its README), re-addressed
to the peer program and sent as one transaction with their supporting resources, are accepted end to
end: the peer API shows the referral, the supporting resources read back through /fhir under the
referral's data boundary, and a resend changes nothing."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from service.store.tables import clinical_context, fhir_resources, participants, referrals
from tests.api.test_fhir_write import post
from tests.conftest import token_headers

FIXTURES = Path(__file__).parent.parent / "fixtures" / "gravity"
CLINIC_ORG = "urn:oid:2.16.840.1.113883.19.5|BHC-7"
CLINIC_SCOPES = (
    "system/*.rs system/Patient.c system/ServiceRequest.c system/Task.cu system/Practitioner.c "
    "system/PractitionerRole.c system/Organization.c system/Condition.c system/Observation.c"
)
SUPPORTING = ("Practitioner", "PractitionerRole", "Organization", "Condition", "Observation")


def food_pantry() -> dict[str, Any]:
    bundle: dict[str, Any] = json.loads((FIXTURES / "food-pantry-referral.json").read_text())
    return bundle


async def counts(database) -> dict[str, int]:
    async with database.read() as conn:
        return {
            t.name: (await conn.execute(select(func.count()).select_from(t))).scalar_one()
            for t in (participants, referrals, clinical_context, fhir_resources)
        }


def by_type(response: httpx.Response) -> dict[str, dict[str, Any]]:
    return {e["resource"]["resourceType"]: e["resource"] for e in response.json()["entry"]}


async def test_the_food_pantry_referral_is_accepted_end_to_end(client, database):
    response = await post(client, "", food_pantry())
    assert response.status_code == 200, response.text
    statuses = [e["response"]["status"] for e in response.json()["entry"]]
    assert statuses == ["201 Created"] * 8
    served = by_type(response)
    sr, task, patient = served["ServiceRequest"], served["Task"], served["Patient"]

    # the peer program's view: reason from the Condition, requester from the PractitionerRole
    own = next(i for i in sr["identifier"] if i["system"].endswith("/referral"))
    referral = (await client.get(f"/peer/v1/referrals/{own['value']}")).json()
    assert referral["reason"] == {"text": "Food insecurity", "code": "733423003", "system": "http://snomed.info/sct"}
    assert referral["referring_clinician"]["name"]["family"] == "Water"
    assert referral["referring_clinician"]["npi"] == "9941339100"
    assert referral["referring_organization"]["name"] == "Better Health Clinic"
    assert referral["requested_at"].startswith("2020-09-11T21:56:54.671")
    assert referral["status"] == "requested"

    # the ServiceRequest links what was kept; every kept resource reads back as sent, re-addressed
    condition = served["Condition"]
    assert sr["reasonReference"] == [{"reference": f"Condition/{condition['id']}"}]
    linked = {ref["reference"] for ref in sr["supportingInfo"]}
    assert linked == {f"{t}/{served[t]['id']}" for t in SUPPORTING if t != "Condition"}
    for resource_type in SUPPORTING:
        read = await client.get(f"/fhir/{resource_type}/{served[resource_type]['id']}")
        assert read.status_code == 200, read.text
        assert read.json() == served[resource_type]
    assert condition["subject"] == {"reference": f"Patient/{patient['id']}"}
    assert condition["code"]["coding"][1] == {
        "system": "http://hl7.org/fhir/sid/icd-10-cm",
        "code": "Z59.4",
        "display": "Lack of adequate food",
    }
    observation = served["Observation"]
    assert condition["evidence"][0]["detail"] == [{"reference": f"Observation/{observation['id']}"}]
    # a reference to a resource not sent is kept as the clinic wrote it
    assert observation["derivedFrom"] == [
        {"reference": "QuestionnaireResponse/SDOHCC-QuestionnaireResponseHungerVitalSignExample"}
    ]
    role = served["PractitionerRole"]
    assert role["practitioner"]["reference"] == f"Practitioner/{served['Practitioner']['id']}"
    # search by patient finds the clinical context
    for resource_type in ("Condition", "Observation"):
        found = (await client.get(f"/fhir/{resource_type}", params={"patient": patient["id"]})).json()
        assert [e["resource"]["id"] for e in found["entry"]] == [served[resource_type]["id"]]
    assert task["focus"]["reference"] == f"ServiceRequest/{sr['id']}"

    # a resend is a no-op: same ids, nothing new stored
    before = await counts(database)
    again = await post(client, "", food_pantry())
    assert again.status_code == 200, again.text
    assert [e["response"]["status"] for e in again.json()["entry"]] == ["200 OK"] * 8
    assert [e["resource"]["id"] for e in again.json()["entry"]] == [
        e["resource"]["id"] for e in response.json()["entry"]
    ]
    assert await counts(database) == before


async def test_a_clinic_client_sees_its_referral_context_and_another_does_not(anonymous, database, program):
    clinic = await token_headers(anonymous, database, program, "bhc", CLINIC_SCOPES, organization=CLINIC_ORG)
    response = await anonymous.post(
        "/fhir", content=json.dumps(food_pantry()), headers={**clinic, "Content-Type": "application/fhir+json"}
    )
    assert response.status_code == 200, response.text
    served = by_type(response)
    # the clinic's organisation carried no identifier: it takes the client's registered one
    referral = served["ServiceRequest"]
    assert referral["contained"][2]["identifier"] == [{"system": "urn:oid:2.16.840.1.113883.19.5", "value": "BHC-7"}]
    for resource_type in ("Condition", "Observation"):
        path = f"/fhir/{resource_type}/{served[resource_type]['id']}"
        assert (await anonymous.get(path, headers=clinic)).status_code == 200
    other = await token_headers(
        anonymous, database, program, "other", "system/*.rs", organization="urn:oid:2.16.840.1.113883.19.5|OTHER-9"
    )
    for resource_type in ("Condition", "Observation", "ServiceRequest"):
        path = f"/fhir/{resource_type}/{served[resource_type]['id']}"
        assert (await anonymous.get(path, headers=other)).status_code == 404


@pytest.mark.parametrize(
    ("change", "status", "expression"),
    [
        # a type PeerLink does not keep is refused, naming the entry
        (lambda b: b["entry"].append(_entry({"resourceType": "Device", "id": "d1"})), 422, "Bundle.entry[8].resource"),
        # a supporting resource about somebody else
        (
            lambda b: b["entry"][4]["resource"].update(subject={"reference": "Patient/someone-else"}),
            422,
            "Bundle.entry[4].resource.subject",
        ),
        # invalid FHIR in a supporting resource names its element
        (
            lambda b: b["entry"][4]["resource"].update(onsetPeriod={"start": "yesterday"}),
            422,
            "Bundle.entry[4].resource.onsetPeriod.start",
        ),
    ],
)
async def test_supporting_entries_refused_naming_them(client, database, change, status, expression):
    before = await counts(database)
    bundle = food_pantry()
    change(bundle)
    response = await post(client, "", bundle)
    assert response.status_code == status, response.text
    outcome = response.json()
    assert expression in [e for issue in outcome["issue"] for e in issue.get("expression", [])]
    assert await counts(database) == before


def _entry(resource: dict[str, Any]) -> dict[str, Any]:
    return {"resource": copy.deepcopy(resource), "request": {"method": "POST", "url": resource["resourceType"]}}
