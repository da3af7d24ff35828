"""FHIR writes from a clinic: referral (ServiceRequest + Task), participant matching by MRN,
conditional create, transaction Bundles, the clinic's Task updates, and every refusal."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import orjson
import pytest
from sqlalchemy import func, select

from service.store.tables import external_identifiers, participants, referrals, review_flags
from tests.factories import MRN_SYSTEM, World, create, participant_body, specialist_body

FHIR = "application/fhir+json"
PATCH = "application/json-patch+json"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
PLACER = "urn:oid:2.16.840.1.113883.19.5.99"
CLINIC_OID = "urn:oid:2.16.840.1.113883.19.5"
NPI = "http://hl7.org/fhir/sid/us-npi"


# --- request bodies ------------------------------------------------------------------------------
def patient_resource(mrn: str = "MRN-1", **changes: Any) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Patient",
        "id": "pat",
        "identifier": [{"type": {"coding": [{"system": V2_0203, "code": "MR"}]}, "system": MRN_SYSTEM, "value": mrn}],
        "name": [{"family": "Example", "given": ["Robin"]}],
        "gender": "female",
        "birthDate": "1990-04-01",
    }
    resource.update(changes)
    return resource


def requester() -> list[dict[str, Any]]:
    return [
        {
            "resourceType": "PractitionerRole",
            "id": "role",
            "practitioner": {"reference": "#dr"},
            "organization": {"reference": "#org"},
        },
        {
            "resourceType": "Practitioner",
            "id": "dr",
            "identifier": [{"system": NPI, "value": "1234567893"}],
            "name": [{"family": "Water", "given": ["Jan"]}],
        },
        {
            "resourceType": "Organization",
            "id": "org",
            "identifier": [{"system": CLINIC_OID, "value": "BHC-7"}],
            "name": "Better Health Clinic",
        },
    ]


def service_request(order: str | None = "ORD-1", *, patient: dict[str, Any] | None = None, **changes: Any):
    """A clinic's referral; by default for a contained Patient with MRN-1."""
    contained = requester()
    subject: dict[str, Any] = {"reference": "#pat"}
    if patient is None:
        patient = patient_resource()
    if patient:
        contained.insert(0, patient)
    resource: dict[str, Any] = {
        "resourceType": "ServiceRequest",
        "contained": contained,
        "status": "active",
        "intent": "order",
        "subject": subject,
        "authoredOn": "2026-01-03T09:15:00-08:00",
        "requester": {"reference": "#role"},
        "reasonCode": [{"text": "Isolation after discharge"}],
        "priority": "urgent",
    }
    if order:
        resource["identifier"] = [{"system": PLACER, "value": order}]
    resource.update(changes)
    return {key: value for key, value in resource.items() if value is not None}


def clinic_task(focus: str, **changes: Any) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Task",
        "status": "requested",
        "intent": "order",
        "code": {"coding": [{"system": "http://hl7.org/fhir/CodeSystem/task-code", "code": "fulfill"}]},
        "focus": {"reference": focus},
        "requester": {"display": "Better Health Clinic", "identifier": {"system": CLINIC_OID, "value": "BHC-7"}},
    }
    resource.update(changes)
    return {key: value for key, value in resource.items() if value is not None}


# --- helpers -------------------------------------------------------------------------------------
async def post(client, path: str, body: Any, content_type: str = FHIR, **headers: str):
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return await client.post(f"/fhir{path}", content=raw, headers={"Content-Type": content_type, **headers})


async def send(client, method: str, path: str, body: Any, content_type: str = FHIR, **headers: str):
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return await client.request(method, f"/fhir{path}", content=raw, headers={"Content-Type": content_type, **headers})


async def counts(database) -> dict[str, int]:
    async with database.read() as conn:
        result = {}
        for table in (participants, referrals, external_identifiers, review_flags):
            result[table.name] = (await conn.execute(select(func.count()).select_from(table))).scalar_one()
        return result


def expressions(response) -> list[str]:
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome", outcome
    return [e for issue in outcome["issue"] for e in issue.get("expression", [])]


async def task_for(client, service_request_id: str):
    """The Task PeerLink serves for a ServiceRequest (found in the Task history)."""
    page = (await client.get("/fhir/Task/_history", params={"_count": 500})).json()
    for entry in page.get("entry", []):
        if entry["resource"]["focus"]["reference"] == f"ServiceRequest/{service_request_id}":
            current = await client.get(f"/fhir/Task/{entry['resource']['id']}")
            assert current.status_code == 200
            return current.json()
    raise AssertionError("no Task for that ServiceRequest")


async def referral_of(client, service_request: dict[str, Any]):
    own = next(i for i in service_request["identifier"] if i["system"].endswith("/referral"))
    response = await client.get(f"/peer/v1/referrals/{own['value']}")
    assert response.status_code == 200
    return response.json()


# --- create ServiceRequest -----------------------------------------------------------------------
async def test_contained_patient_with_a_known_mrn_is_matched(client, database):
    existing = await create(client, "participants", participant_body())
    before = await counts(database)

    response = await post(client, "/ServiceRequest", service_request())

    assert response.status_code == 201, response.text
    assert response.headers["content-type"].startswith(FHIR)
    body = response.json()
    assert body["resourceType"] == "ServiceRequest" and body["meta"]["versionId"] == "1"
    assert response.headers["etag"] == 'W/"1"'
    assert response.headers["location"].endswith(f"/fhir/ServiceRequest/{body['id']}/_history/1")
    assert {"system": PLACER, "value": "ORD-1"} in body["identifier"]
    assert body["priority"] == "urgent"
    after = await counts(database)
    assert after["participants"] == before["participants"]
    assert after["referrals"] == before["referrals"] + 1
    assert after["review_flags"] == 0
    referral = await referral_of(client, body)
    assert referral["participant_id"] == existing["id"]
    assert referral["identifiers"] == [{"type": "other", "system": PLACER, "value": "ORD-1", "assigner": None}]
    assert referral["referring_clinician"]["npi"] == "1234567893"
    # what a GET returns is what the POST answered
    read = await client.get(f"/fhir/ServiceRequest/{body['id']}")
    assert read.json() == body
    patient = (await client.get(f"/fhir/{body['subject']['reference']}")).json()
    assert patient["identifier"][0]["value"] == existing["id"]


async def test_unknown_mrn_creates_a_participant_flagged_for_review(client, database):
    await create(client, "participants", participant_body())
    response = await post(client, "/ServiceRequest", service_request(patient=patient_resource("MRN-NEW")))
    assert response.status_code == 201, response.text
    after = await counts(database)
    assert after["participants"] == 2 and after["review_flags"] == 1
    referral = await referral_of(client, response.json())
    participant = (await client.get(f"/peer/v1/participants/{referral['participant_id']}")).json()
    assert participant["identifiers"][0]["value"] == "MRN-NEW"
    assert participant["name"]["family"] == "Example"
    # the next referral for the same person finds the participant made the first time
    again = await post(client, "/ServiceRequest", service_request("ORD-2", patient=patient_resource("MRN-NEW")))
    assert again.status_code == 201
    assert (await referral_of(client, again.json()))["participant_id"] == participant["id"]
    assert (await counts(database))["participants"] == 2


async def test_subject_reference_to_a_patient_we_serve(client, database):
    world = await World(client).build()
    patient_id = (await client.get("/fhir/Patient/_history")).json()["entry"][0]["resource"]["id"]
    body = service_request(patient={}, subject={"reference": f"Patient/{patient_id}"})
    response = await post(client, "/ServiceRequest", body)
    assert response.status_code == 201, response.text
    assert (await referral_of(client, response.json()))["participant_id"] == world.ids["participant"]
    # a Task created with the referral is served at once, requested and owned by the program
    task = await task_for(client, response.json()["id"])
    assert task["status"] == "requested"
    assert task["owner"]["reference"].startswith("Organization/")


async def test_subject_by_identifier_only(client):
    existing = await create(client, "participants", participant_body())
    body = service_request(patient={}, subject={"identifier": {"system": MRN_SYSTEM, "value": "MRN-1"}})
    response = await post(client, "/ServiceRequest", body)
    assert response.status_code == 201, response.text
    assert (await referral_of(client, response.json()))["participant_id"] == existing["id"]


# --- conditional create --------------------------------------------------------------------------
async def test_conditional_create_is_idempotent(client, database):
    first = await post(client, "/ServiceRequest", service_request(), **{"If-None-Exist": f"identifier={PLACER}|ORD-1"})
    assert first.status_code == 201, first.text
    before = await counts(database)
    again = await post(client, "/ServiceRequest", service_request(), **{"If-None-Exist": f"identifier={PLACER}|ORD-1"})
    assert again.status_code == 200, again.text
    assert again.json() == first.json()
    assert again.headers["etag"] == 'W/"1"'
    assert again.headers["location"] == first.headers["location"]
    assert await counts(database) == before
    # a plain resend of the same order (same clinic identifier) does not duplicate it either
    resend = await post(client, "/ServiceRequest", service_request())
    assert resend.status_code == 200 and resend.json()["id"] == first.json()["id"]
    assert await counts(database) == before


async def test_conditional_create_on_other_parameters(client):
    first = await post(client, "/ServiceRequest", service_request())
    subject = first.json()["subject"]["reference"]
    by_patient = await post(
        client, "/ServiceRequest", service_request("ORD-2"), **{"If-None-Exist": f"patient={subject}&status=active"}
    )
    assert by_patient.status_code == 200 and by_patient.json()["id"] == first.json()["id"]
    second = await post(client, "/ServiceRequest", service_request("ORD-3"))
    assert second.status_code == 201
    # now two ServiceRequests match: the server cannot tell which was meant
    ambiguous = await post(
        client, "/ServiceRequest", service_request("ORD-4"), **{"If-None-Exist": f"patient={subject}"}
    )
    assert ambiguous.status_code == 412, ambiguous.text
    assert ambiguous.json()["resourceType"] == "OperationOutcome"
    unknown = await post(client, "/ServiceRequest", service_request("ORD-5"), **{"If-None-Exist": "authored=2026"})
    assert unknown.status_code == 400
    assert expressions(unknown) == ["If-None-Exist"]


@pytest.mark.parametrize(("copies", "known_patient"), [(2, False), (4, False), (3, True)])
async def test_concurrent_identical_conditional_creates_make_one_referral(client, database, copies, known_patient):
    if known_patient:
        await create(
            client,
            "participants",
            participant_body(identifiers=[{"type": "MR", "system": MRN_SYSTEM, "value": "MRN-RACE"}]),
        )
    body = service_request(patient=patient_resource("MRN-RACE"))
    header = {"If-None-Exist": f"identifier={PLACER}|ORD-1"}
    responses = await asyncio.gather(*(post(client, "/ServiceRequest", body, **header) for _ in range(copies)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * (copies - 1) + [201], [r.text for r in responses]
    assert len({r.json()["id"] for r in responses}) == 1
    after = await counts(database)
    assert after["referrals"] == 1 and after["participants"] == 1


async def test_concurrent_referrals_for_one_new_patient_make_one_participant(client, database):
    bodies = [service_request(f"ORD-{n}", patient=patient_resource("MRN-TWICE")) for n in range(3)]
    responses = await asyncio.gather(*(post(client, "/ServiceRequest", body) for body in bodies))
    assert [r.status_code for r in responses] == [201, 201, 201], [r.text for r in responses]
    after = await counts(database)
    assert after["referrals"] == 3 and after["participants"] == 1


# --- Task sent on its own --------------------------------------------------------------------------
async def test_task_restating_a_service_request_creates_nothing(client, database):
    created = (await post(client, "/ServiceRequest", service_request())).json()
    before = await counts(database)
    response = await post(client, "/Task", clinic_task(f"ServiceRequest/{created['id']}"))
    assert response.status_code == 200, response.text
    assert response.json()["resourceType"] == "Task"
    assert response.json()["focus"]["reference"] == f"ServiceRequest/{created['id']}"
    assert await counts(database) == before
    absolute = await post(client, "/Task", clinic_task(f"http://peerlink.test/fhir/ServiceRequest/{created['id']}"))
    assert absolute.status_code == 200


async def test_task_that_changes_or_names_nothing_we_hold_is_refused(client):
    created = (await post(client, "/ServiceRequest", service_request())).json()
    cancelling = clinic_task(f"ServiceRequest/{created['id']}", status="cancelled", statusReason={"text": "moved"})
    response = await post(client, "/Task", cancelling)
    assert response.status_code == 422
    assert expressions(response) == ["Task.status"]
    unknown = await post(client, "/Task", clinic_task("ServiceRequest/not-ours"))
    assert unknown.status_code == 422
    assert expressions(unknown) == ["Task.focus"]
    other_patient = await post(
        client, "/Task", clinic_task(f"ServiceRequest/{created['id']}", **{"for": {"reference": "Patient/x"}})
    )
    assert other_patient.status_code == 422
    assert expressions(other_patient) == ["Task.for"]


# --- transaction ---------------------------------------------------------------------------------
P_URL, SR_URL, T_URL = (
    "urn:uuid:6a1a6f0e-0000-4000-8000-000000000001",
    "urn:uuid:6a1a6f0e-0000-4000-8000-000000000002",
    "urn:uuid:6a1a6f0e-0000-4000-8000-000000000003",
)


def transaction_bundle(mrn: str = "MRN-B", order: str = "ORD-B", **task_changes: Any) -> dict[str, Any]:
    patient = patient_resource(mrn)
    del patient["id"]
    sr = service_request(order, patient={}, subject={"reference": P_URL})
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": P_URL,
                "resource": patient,
                "request": {"method": "POST", "url": "Patient", "ifNoneExist": f"identifier={MRN_SYSTEM}|{mrn}"},
            },
            {
                "fullUrl": SR_URL,
                "resource": sr,
                "request": {"method": "POST", "url": "ServiceRequest", "ifNoneExist": f"identifier={PLACER}|{order}"},
            },
            {
                "fullUrl": T_URL,
                "resource": clinic_task(SR_URL, **{"for": {"reference": P_URL}, **task_changes}),
                "request": {"method": "POST", "url": "Task"},
            },
        ],
    }


async def test_transaction_resolves_urn_uuid_references(client, database):
    response = await post(client, "", transaction_bundle())
    assert response.status_code == 200, response.text
    bundle = response.json()
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "transaction-response"
    patient, sr, task = (entry["resource"] for entry in bundle["entry"])
    statuses = [entry["response"]["status"] for entry in bundle["entry"]]
    assert statuses == ["201 Created", "201 Created", "201 Created"]
    assert bundle["entry"][1]["response"]["location"] == f"ServiceRequest/{sr['id']}/_history/1"
    assert bundle["entry"][1]["response"]["etag"] == 'W/"1"'
    assert sr["subject"]["reference"] == f"Patient/{patient['id']}"
    assert task["focus"]["reference"] == f"ServiceRequest/{sr['id']}"
    assert task["for"]["reference"] == f"Patient/{patient['id']}"
    assert task["requester"]["display"] == "Better Health Clinic"
    assert (await counts(database))["participants"] == 1
    # the same transaction again: every entry matches what the first one stored
    before = await counts(database)
    again = await post(client, "", transaction_bundle())
    assert again.status_code == 200, again.text
    assert [e["response"]["status"] for e in again.json()["entry"]] == ["200 OK"] * 3
    assert [e["resource"]["id"] for e in again.json()["entry"]] == [patient["id"], sr["id"], task["id"]]
    assert await counts(database) == before


async def test_transaction_with_an_existing_participant_matches_by_mrn(client, database):
    existing = await create(client, "participants", participant_body())
    bundle = transaction_bundle(mrn="MRN-1")
    bundle["entry"][0]["request"].pop("ifNoneExist")
    response = await post(client, "", bundle)
    assert response.status_code == 200, response.text
    assert response.json()["entry"][0]["response"]["status"] == "200 OK"
    assert (await counts(database))["participants"] == 1
    patient = response.json()["entry"][0]["resource"]
    assert patient["identifier"][0]["value"] == existing["id"]


@pytest.mark.parametrize(
    ("break_it", "status", "expression"),
    [
        (lambda b: b["entry"][2]["resource"].update(status="accepted"), 422, "Bundle.entry[2].resource.status"),
        (lambda b: b["entry"][2]["resource"].update(authoredOn="soon"), 422, "Bundle.entry[2].resource.authoredOn"),
        (lambda b: b["entry"][2]["resource"].update(focus={"reference": "urn:uuid:nope"}), 422, None),
        (lambda b: b["entry"][2]["request"].update(method="DELETE"), 400, "Bundle.entry[2].request.method"),
        (lambda b: b["entry"][2]["request"].update(url="Patient"), 400, "Bundle.entry[2].request.url"),
        (lambda b: b["entry"][1]["resource"].pop("authoredOn"), 422, "Bundle.entry[1].resource.authoredOn"),
        (
            lambda b: b["entry"][1]["resource"].update(subject={"reference": "urn:uuid:unknown"}),
            422,
            "Bundle.entry[1].resource.subject",
        ),
        (lambda b: b["entry"][0]["resource"].pop("birthDate"), 422, "Bundle.entry[0].resource.birthDate"),
    ],
)
async def test_transaction_with_a_bad_entry_stores_nothing(client, database, break_it, status, expression):
    await create(client, "participants", participant_body())
    before = await counts(database)
    bundle = transaction_bundle()
    break_it(bundle)
    response = await post(client, "", bundle)
    assert response.status_code == status, response.text
    if expression:
        assert expression in expressions(response)
    else:
        assert all(e.startswith("Bundle.entry[2]") for e in expressions(response))
    assert await counts(database) == before


async def test_batch_and_other_bundles_are_refused(client):
    batch = {**transaction_bundle(), "type": "batch"}
    response = await post(client, "", batch)
    assert response.status_code == 400
    assert expressions(response) == ["Bundle.type"]
    assert "batch" in response.json()["issue"][0]["diagnostics"]
    assert (await post(client, "", {**transaction_bundle(), "type": "collection"})).status_code == 400
    assert (await post(client, "", {"resourceType": "Patient"})).status_code == 400
    assert (await post(client, "/", {"resourceType": "Patient"})).status_code == 400  # [base]/ is the same
    assert (await post(client, "", transaction_bundle(), "text/plain")).status_code == 415


async def test_transaction_refreshing_a_task_in_the_same_bundle(client, database):
    """A transaction can also carry the clinic's update of a Task we serve (PUT Task/{id})."""
    created = (await post(client, "/ServiceRequest", service_request())).json()
    task = await task_for(client, created["id"])
    cancelled = {**task, "status": "cancelled", "statusReason": {"text": "Duplicate order"}}
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": cancelled, "request": {"method": "PUT", "url": f"Task/{task['id']}", "ifMatch": 'W/"1"'}}
        ],
    }
    response = await post(client, "", bundle)
    assert response.status_code == 200, response.text
    assert response.json()["entry"][0]["resource"]["status"] == "cancelled"
    assert response.json()["entry"][0]["response"]["etag"] == 'W/"2"'


# --- the clinic's Task updates -------------------------------------------------------------------
async def _referral_and_task(client) -> tuple[dict[str, Any], dict[str, Any]]:
    created = (await post(client, "/ServiceRequest", service_request())).json()
    return created, await task_for(client, created["id"])


async def test_put_cancel_with_if_match(client):
    sr, task = await _referral_and_task(client)
    changed = {**task, "status": "cancelled", "statusReason": {"text": "The patient moved away"}}
    response = await send(client, "PUT", f"/Task/{task['id']}", changed, **{"If-Match": 'W/"1"'})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "cancelled"
    assert body["statusReason"] == {"text": "The patient moved away"}
    assert body["businessStatus"]["coding"][0]["code"] == "6.0"
    assert response.headers["etag"] == 'W/"2"'
    referral = await referral_of(client, sr)
    assert referral["status"] == "cancelled"
    assert referral["transitions"][-1]["by"] == "clinic"
    assert referral["transitions"][-1]["reason"] == "The patient moved away"
    # the ServiceRequest follows
    assert (await client.get(f"/fhir/ServiceRequest/{sr['id']}")).json()["status"] == "revoked"
    # stale If-Match
    stale = await send(client, "PUT", f"/Task/{task['id']}", changed, **{"If-Match": 'W/"1"'})
    assert stale.status_code == 412
    assert stale.json()["resourceType"] == "OperationOutcome"
    # PUT of what is served is no change
    same = await send(client, "PUT", f"/Task/{task['id']}", body, **{"If-Match": 'W/"2"'})
    assert same.status_code == 200 and same.headers["etag"] == 'W/"2"'
    # a closed referral cannot be cancelled again
    fresh = (await client.get(f"/fhir/Task/{task['id']}")).json()
    again = await send(client, "PUT", f"/Task/{task['id']}", {**fresh, "statusReason": {"text": "again"}})
    assert again.status_code == 422


async def test_patch_cancel_with_if_match(client):
    sr, task = await _referral_and_task(client)
    patch = [
        {"op": "test", "path": "/status", "value": "requested"},
        {"op": "replace", "path": "/status", "value": "cancelled"},
        {"op": "add", "path": "/statusReason", "value": {"text": "Duplicate referral"}},
    ]
    response = await send(client, "PATCH", f"/Task/{task['id']}", patch, PATCH, **{"If-Match": 'W/"1"'})
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "cancelled"
    assert response.headers["etag"] == 'W/"2"'
    assert (await referral_of(client, sr))["status"] == "cancelled"
    stale = await send(client, "PATCH", f"/Task/{task['id']}", patch, PATCH, **{"If-Match": 'W/"1"'})
    assert stale.status_code == 412


async def test_patch_refusals(client):
    _, task = await _referral_and_task(client)
    path = f"/Task/{task['id']}"
    failed_test = [{"op": "test", "path": "/status", "value": "accepted"}]
    assert (await send(client, "PATCH", path, failed_test, PATCH)).status_code == 422
    missing = [{"op": "remove", "path": "/nothing"}]
    assert (await send(client, "PATCH", path, missing, PATCH)).status_code == 422
    malformed = [{"op": "jump", "path": "/status"}]
    assert (await send(client, "PATCH", path, malformed, PATCH)).status_code == 400
    not_a_list = {"op": "replace", "path": "/status", "value": "cancelled"}
    assert (await send(client, "PATCH", path, not_a_list, PATCH)).status_code == 400
    owner = [{"op": "replace", "path": "/owner", "value": {"reference": "Organization/other"}}]
    response = await send(client, "PATCH", path, owner, PATCH)
    assert response.status_code == 422
    assert expressions(response) == ["Task.owner"]
    no_reason = [{"op": "replace", "path": "/status", "value": "cancelled"}]
    response = await send(client, "PATCH", path, no_reason, PATCH)
    assert response.status_code == 422
    assert expressions(response) == ["Task.statusReason"]
    as_fhir_json = await send(client, "PATCH", path, no_reason, FHIR)
    assert as_fhir_json.status_code == 415
    # nothing changed
    assert (await client.get(f"/fhir{path}")).headers["etag"] == 'W/"1"'


@pytest.mark.parametrize(
    ("change", "expression"),
    [
        ({"status": "accepted"}, "Task.status"),
        ({"status": "completed"}, "Task.status"),
        ({"owner": {"reference": "Organization/elsewhere"}}, "Task.owner"),
        ({"priority": "stat"}, "Task.priority"),
        ({"statusReason": {"text": "just a note"}}, "Task.statusReason"),
        ({"output": [{"type": {"text": "x"}, "valueString": "done"}]}, "Task.output"),
    ],
)
async def test_put_changes_the_clinic_may_not_make(client, change, expression):
    _, task = await _referral_and_task(client)
    response = await send(client, "PUT", f"/Task/{task['id']}", {**task, **change}, **{"If-Match": 'W/"1"'})
    assert response.status_code == 422, response.text
    assert expressions(response) == [expression]
    assert (await client.get(f"/fhir/Task/{task['id']}")).headers["etag"] == 'W/"1"'


async def test_peer_transitions_are_visible_on_the_task(client):
    sr, task = await _referral_and_task(client)
    referral_id = (await referral_of(client, sr))["id"]
    specialist = await create(client, "specialists", specialist_body())
    steps = [
        ("receive", {}, "received", "2.0"),
        ("accept", {"specialist_id": specialist["id"]}, "accepted", "3.0"),
        ("start", {}, "in-progress", "5.x"),
        ("complete", {"outcome_summary": "Six sessions; joined a peer group."}, "completed", "7.0"),
    ]
    version = 1
    for action, extra, status, business in steps:
        moved = await client.post(f"/peer/v1/referrals/{referral_id}/{action}", json={"by": "coordinator", **extra})
        assert moved.status_code == 200, moved.text
        response = await client.get(f"/fhir/Task/{task['id']}")
        current = response.json()
        assert current["status"] == status
        assert current["businessStatus"]["coding"][0]["code"] == business
        assert int(current["meta"]["versionId"]) == version + 1
        version += 1
        if action == "accept":
            assert current["owner"]["reference"].startswith("PractitionerRole/")
    assert current["output"][-1]["valueString"] == "Six sessions; joined a peer group."
    # the clinic can no longer cancel a completed referral
    cancel = {**current, "status": "cancelled", "statusReason": {"text": "late"}}
    response = await send(client, "PUT", f"/Task/{task['id']}", cancel)
    assert response.status_code == 409


async def test_peer_rejection_shows_its_reason_on_the_task(client):
    sr, task = await _referral_and_task(client)
    referral_id = (await referral_of(client, sr))["id"]
    await client.post(f"/peer/v1/referrals/{referral_id}/receive", json={"by": "coordinator"})
    rejected = await client.post(
        f"/peer/v1/referrals/{referral_id}/reject", json={"by": "coordinator", "reason": "Outside our area"}
    )
    assert rejected.status_code == 200
    current = (await client.get(f"/fhir/Task/{task['id']}")).json()
    assert current["status"] == "rejected"
    assert current["statusReason"] == {"text": "Outside our area"}
    assert current["businessStatus"]["coding"][0]["code"] == "4.0"


# --- errors --------------------------------------------------------------------------------------
async def test_bad_json_wrong_type_and_media_type(client):
    assert (await post(client, "/ServiceRequest", b"{not json")).status_code == 400
    assert (await post(client, "/ServiceRequest", b"")).status_code == 400
    assert (await post(client, "/ServiceRequest", [1, 2])).status_code == 400
    wrong = await post(client, "/ServiceRequest", patient_resource())
    assert wrong.status_code == 400
    assert wrong.json()["resourceType"] == "OperationOutcome"
    assert (await post(client, "/Task", service_request())).status_code == 400
    as_text = await post(client, "/ServiceRequest", service_request(), "text/plain")
    assert as_text.status_code == 415
    as_xml = await post(client, "/ServiceRequest", service_request(), "application/fhir+xml")
    assert as_xml.status_code == 415
    assert (await post(client, "/ServiceRequest", service_request(), "application/json")).status_code == 201


@pytest.mark.parametrize(
    ("change", "expression"),
    [
        ({"authoredOn": "yesterday"}, "ServiceRequest.authoredOn"),
        ({"intent": 7}, "ServiceRequest.intent"),
        ({"authoredOn": None}, "ServiceRequest.authoredOn"),
        ({"reasonCode": None}, "ServiceRequest.reasonCode"),
        ({"status": "completed"}, "ServiceRequest.status"),
        ({"status": "revoked"}, "ServiceRequest.status"),
        ({"requester": None}, "ServiceRequest.requester"),
        ({"subject": None}, "ServiceRequest.subject"),
        ({"subject": {"reference": "#nobody"}}, "ServiceRequest.subject"),
        ({"subject": {"reference": "Patient/unknown"}}, "ServiceRequest.subject"),
        ({"subject": {"identifier": {"system": MRN_SYSTEM, "value": "nobody"}}}, "ServiceRequest.subject.identifier"),
        ({"identifier": [{"system": PLACER, "value": "A"}, {"system": PLACER, "value": "A"}]}, None),
    ],
)
async def test_invalid_service_request_names_the_element(client, database, change, expression):
    before = await counts(database)
    response = await post(client, "/ServiceRequest", service_request(**change))
    assert response.status_code == 422, response.text
    if expression:
        assert expressions(response) == [expression]
    assert await counts(database) == before


async def test_invalid_contained_patient_names_the_element(client, database):
    response = await post(client, "/ServiceRequest", service_request(patient=patient_resource(gender="robot")))
    assert response.status_code == 422, response.text
    assert expressions(response)[0].startswith("ServiceRequest.contained[0]")
    assert (await counts(database))["participants"] == 0


async def test_unknown_task_delete_and_version_header(client):
    _, task = await _referral_and_task(client)
    missing = await send(client, "PUT", "/Task/unknown", {**task, "id": "unknown"})
    assert missing.status_code == 404
    assert missing.json()["resourceType"] == "OperationOutcome"
    assert (await send(client, "PATCH", "/Task/unknown", [], PATCH)).status_code == 404
    deleted = await client.delete(f"/fhir/Task/{task['id']}")
    assert deleted.status_code == 405
    assert deleted.json()["resourceType"] == "OperationOutcome"
    assert (await client.delete(f"/fhir/ServiceRequest/{task['id']}")).status_code == 405
    other_id = await send(client, "PUT", f"/Task/{task['id']}", {**task, "id": "different"})
    assert other_id.status_code == 400
    bad_etag = await send(client, "PUT", f"/Task/{task['id']}", task, **{"If-Match": "3"})
    assert bad_etag.status_code == 400
    not_a_task = await send(client, "PUT", f"/Task/{task['id']}", copy.deepcopy(patient_resource()))
    assert not_a_task.status_code == 400


async def test_concurrent_cancel_and_peer_accept_conflict_cleanly(client):
    sr, task = await _referral_and_task(client)
    referral_id = (await referral_of(client, sr))["id"]
    await client.post(f"/peer/v1/referrals/{referral_id}/receive", json={"by": "coordinator"})
    stale_task = task  # version 1: the peer's receive moved it to version 2
    cancel = {**stale_task, "status": "cancelled", "statusReason": {"text": "moved"}}
    response = await send(client, "PUT", f"/Task/{task['id']}", cancel, **{"If-Match": 'W/"1"'})
    assert response.status_code == 412
    current = (await client.get(f"/fhir/Task/{task['id']}")).json()
    retry = {**current, "status": "cancelled", "statusReason": {"text": "moved"}}
    ok = await send(client, "PUT", f"/Task/{task['id']}", retry, **{"If-Match": f'W/"{current["meta"]["versionId"]}"'})
    assert ok.status_code == 200, ok.text
