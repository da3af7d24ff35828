"""Liberal in what PeerLink accepts from clinics (issue 15): anything valid FHIR is accepted, or refused
with the element named; never refused for a rule FHIR does not have."""

from __future__ import annotations

import pytest

from tests.api.test_fhir_write import (
    SR_URL,
    T_URL,
    clinic_task,
    expressions,
    post,
    referral_of,
    service_request,
    task_for,
    transaction_bundle,
)

CLINIC_URN = "urn:example:clinic:referrals"
CLINIC_TASKS = "urn:example:clinic:tasks"


# --- 1. dateTime keeps the precision the clinic gave ---------------------------------------------
@pytest.mark.parametrize("authored", ["2026-11-20", "2026-11", "2026", "2026-11-20T10:00:00+01:00"])
async def test_authored_on_at_any_fhir_precision_is_accepted_and_returned_as_sent(client, authored):
    response = await post(client, "/ServiceRequest", service_request(authoredOn=authored))
    assert response.status_code == 201, response.text
    served = response.json()
    assert served["authoredOn"] == authored
    assert (await task_for(client, served["id"]))["authoredOn"] == authored
    referral = await referral_of(client, served)
    assert referral["authored_on"] == (None if "T" in authored else authored)
    assert referral["requested_at"].startswith(authored[:4])


async def test_date_precision_authored_on_is_read_as_that_day():
    from mappings.primitives import date_time

    assert date_time("2026-11-20", "x").isoformat() == "2026-11-20T00:00:00+00:00"
    assert date_time("2026-11", "x").isoformat() == "2026-11-01T00:00:00+00:00"
    assert date_time("2026-11-20T10:00:00+01:00", "x").isoformat() == "2026-11-20T10:00:00+01:00"


@pytest.mark.parametrize("authored", ["2026-11-20T10:00:00", "2026-13", "20261120", "2026-02-30"])
async def test_what_fhir_itself_rejects_is_refused_naming_authored_on(client, authored):
    response = await post(client, "/ServiceRequest", service_request(authoredOn=authored))
    assert response.status_code == 422, response.text
    assert expressions(response) == ["ServiceRequest.authoredOn"]


async def test_authored_on_at_date_precision_in_a_transaction(client):
    bundle = transaction_bundle()
    bundle["entry"][1]["resource"]["authoredOn"] = "2026-11-20"
    bundle["entry"][2]["resource"]["authoredOn"] = "2026-11-20"
    response = await post(client, "", bundle)
    assert response.status_code == 200, response.text
    assert response.json()["entry"][1]["resource"]["authoredOn"] == "2026-11-20"


# --- 2. Identifier.system is any absolute URI ----------------------------------------------------
async def test_identifier_system_may_be_any_absolute_uri(client):
    body = service_request(identifier=[{"system": CLINIC_URN, "value": "R-1"}])
    response = await post(client, "/ServiceRequest", body)
    assert response.status_code == 201, response.text
    served = response.json()
    assert {"system": CLINIC_URN, "value": "R-1"} in [
        {k: i[k] for k in ("system", "value")} for i in served["identifier"]
    ]
    found = (await client.get("/fhir/ServiceRequest", params={"identifier": f"{CLINIC_URN}|R-1"})).json()
    assert [e["resource"]["id"] for e in found.get("entry", [])] == [served["id"]]


async def test_a_relative_identifier_system_is_refused_naming_it(client):
    body = service_request(identifier=[{"system": "clinic/referrals", "value": "R-1"}])
    response = await post(client, "/ServiceRequest", body)
    assert response.status_code == 422, response.text
    assert expressions(response)[0].startswith("ServiceRequest.identifier")


# --- 8. the clinic's own Task identifier is kept and searchable ----------------------------------
async def test_the_clinic_task_identifier_is_kept_and_searchable(client):
    bundle = transaction_bundle(identifier=[{"system": CLINIC_TASKS, "value": "T-1"}])
    response = await post(client, "", bundle)
    assert response.status_code == 200, response.text
    task = response.json()["entry"][2]["resource"]
    assert {"system": CLINIC_TASKS, "value": "T-1"} in [
        {k: i[k] for k in ("system", "value")} for i in task["identifier"]
    ]
    found = (await client.get("/fhir/Task", params={"identifier": f"{CLINIC_TASKS}|T-1"})).json()
    assert [e["resource"]["id"] for e in found.get("entry", [])] == [task["id"]]
    # PeerLink's own identifier is still there beside it
    assert any(i["system"].endswith("/referral-task") for i in task["identifier"])
    # a resend changes nothing
    again = await post(client, "", bundle)
    assert [e["response"]["status"] for e in again.json()["entry"]] == ["200 OK"] * 3
    assert again.json()["entry"][2]["resource"]["identifier"] == task["identifier"]


async def test_a_task_posted_alone_with_its_identifier_keeps_it(client):
    created = (await post(client, "/ServiceRequest", service_request())).json()
    task = clinic_task(f"ServiceRequest/{created['id']}", identifier=[{"system": CLINIC_TASKS, "value": "T-9"}])
    response = await post(client, "/Task", task)
    assert response.status_code == 200, response.text
    found = (await client.get("/fhir/Task", params={"identifier": f"{CLINIC_TASKS}|T-9"})).json()
    assert len(found.get("entry", [])) == 1


_unused = (SR_URL, T_URL)


# --- 3. what a referral needs, from what clinics send ---------------------------------------------
FOOD_INSECURITY = {
    "resourceType": "Condition",
    "id": "food",
    "code": {"coding": [{"system": "http://snomed.info/sct", "code": "733423003", "display": "Food insecurity"}]},
    "subject": {"reference": "#pat"},
}


async def test_reason_from_a_reason_reference_to_a_contained_condition(client):
    body = service_request(reasonCode=None, reasonReference=[{"reference": "#food"}])
    body["contained"].append(FOOD_INSECURITY)
    response = await post(client, "/ServiceRequest", body)
    assert response.status_code == 201, response.text
    referral = await referral_of(client, response.json())
    assert referral["reason"] == {"text": "Food insecurity", "code": "733423003", "system": "http://snomed.info/sct"}


async def test_reason_from_a_reason_reference_to_a_condition_in_the_transaction(client):
    bundle = transaction_bundle()
    sr = bundle["entry"][1]["resource"]
    del sr["reasonCode"]
    sr["reasonReference"] = [{"reference": "urn:uuid:6a1a6f0e-0000-4000-8000-00000000000c"}]
    condition = {k: v for k, v in FOOD_INSECURITY.items() if k != "id"}
    condition["subject"] = {"reference": bundle["entry"][0]["fullUrl"]}
    bundle["entry"].append(
        {
            "fullUrl": "urn:uuid:6a1a6f0e-0000-4000-8000-00000000000c",
            "resource": condition,
            "request": {"method": "POST", "url": "Condition"},
        }
    )
    response = await post(client, "", bundle)
    assert response.status_code == 200, response.text
    served_sr, kept = response.json()["entry"][1]["resource"], response.json()["entry"][3]["resource"]
    assert served_sr["reasonReference"] == [{"reference": f"Condition/{kept['id']}"}]
    assert (await referral_of(client, served_sr))["reason"]["text"] == "Food insecurity"


async def test_a_reason_reference_naming_nothing_sent_is_refused_naming_it(client):
    response = await post(
        client, "/ServiceRequest", service_request(reasonCode=None, reasonReference=[{"reference": "Condition/x"}])
    )
    assert response.status_code == 422, response.text
    assert expressions(response) == ["ServiceRequest.reasonReference[0]"]


async def test_a_practitioner_requester_without_organization_takes_the_clients(anonymous, database, program):
    from tests.conftest import token_headers

    scopes = "system/*.rs system/ServiceRequest.c system/Task.cu"
    headers = await token_headers(
        anonymous, database, program, "bhc", scopes, organization="urn:oid:2.16.840.1.113883.19.5|BHC-7"
    )
    body = service_request(requester={"reference": "#dr"})
    body["contained"] = [r for r in body["contained"] if r["resourceType"] in ("Patient", "Practitioner")]
    response = await post(anonymous, "/ServiceRequest", body, **headers)
    assert response.status_code == 201, response.text
    contained = {r["resourceType"]: r for r in response.json()["contained"]}
    assert contained["Practitioner"]["name"][0]["family"] == "Water"
    assert contained["Organization"]["identifier"] == [{"system": "urn:oid:2.16.840.1.113883.19.5", "value": "BHC-7"}]


async def test_a_practitioner_requester_without_organization_from_a_program_client_names_the_requester(client):
    body = service_request(requester={"reference": "#dr"})
    body["contained"] = [r for r in body["contained"] if r["resourceType"] in ("Patient", "Practitioner")]
    response = await post(client, "/ServiceRequest", body)
    assert response.status_code == 422, response.text
    assert expressions(response) == ["ServiceRequest.requester"]


async def test_a_resent_service_request_is_found_by_the_clinics_id(client, database):
    body = service_request(order=None, id="clinic-sr-1")
    first = await post(client, "/ServiceRequest", body)
    assert first.status_code == 201, first.text
    again = await post(client, "/ServiceRequest", body)
    assert again.status_code == 200, again.text
    assert again.json()["id"] == first.json()["id"]
