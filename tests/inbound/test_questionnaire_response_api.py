"""POST /fhir/QuestionnaireResponse: a completed questionnaire for one of the program's instruments,
from the program's own client (a participant-facing app) or a clinic's client, scored and stored as
an assessment; every refusal an OperationOutcome with the right 4xx, naming the element, nothing stored."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from sqlalchemy import func, select

from mappings.ids import fhir_id
from service.store.tables import assessments, external_identifiers
from tests.conftest import token_headers
from tests.factories import MRN_SYSTEM, create, participant_body, specialist_body
from tests.inbound.support import phq9_response

FHIR = "application/fhir+json"
CLINIC_OID = "urn:oid:2.16.840.1.113883.19.5"
CLINIC = f"{CLINIC_OID}|BHC-7"
PLACER = "urn:oid:2.16.840.1.113883.19.5.99"
APP_SCOPES = "system/QuestionnaireResponse.c"
CLINIC_SCOPES = "system/ServiceRequest.c system/QuestionnaireResponse.c"
QR_SYSTEM = "urn:oid:2.16.840.1.113883.19.5.42"


def patient_id(program, participant_id: str) -> str:
    return fhir_id(program.identifier_system, "participant", participant_id)


def response_for(patient: str, **changes: Any) -> dict[str, Any]:
    return (
        phq9_response(subject={"reference": f"Patient/{patient}"}, author={"reference": f"Patient/{patient}"}) | changes
    )


async def post(
    http, body: Any, headers: dict[str, str] | None = None, *, content_type: str = FHIR, condition: str | None = None
):
    sent = {"Content-Type": content_type, **(headers or {}), **({"If-None-Exist": condition} if condition else {})}
    return await http.post(
        "/fhir/QuestionnaireResponse", content=body if isinstance(body, bytes) else orjson.dumps(body), headers=sent
    )


async def stored(database) -> tuple[int, int]:
    async with database.read() as conn:
        counted = []
        for table in (assessments, external_identifiers):
            counted.append((await conn.execute(select(func.count()).select_from(table))).scalar_one())
        return counted[0], counted[1]


def issue(response) -> dict[str, Any]:
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome", response.text
    found: dict[str, Any] = outcome["issue"][0]
    return found


@pytest.fixture
async def people(client) -> dict[str, str]:
    return {
        "a": (await create(client, "participants", participant_body()))["id"],
        "b": (await create(client, "participants", participant_body(identifiers=[]) | {"birth_date": "1985-02-02"}))[
            "id"
        ],
        "specialist": (await create(client, "specialists", specialist_body()))["id"],
    }


async def test_an_app_sends_a_response_it_is_scored_and_stored(client, anonymous, database, program, people):
    app = await token_headers(anonymous, database, program, "participant-app", APP_SCOPES)
    patient = patient_id(program, people["a"])
    created = await post(anonymous, response_for(patient), app)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["resourceType"] == "QuestionnaireResponse" and body["status"] == "completed"
    assert body["subject"] == {"reference": f"Patient/{patient}"}
    assert body["questionnaire"] == "https://peerlink.example.org/fhir/Questionnaire/phq-9|1.0.0"
    assert created.headers["location"] == f"http://peerlink.test/fhir/QuestionnaireResponse/{body['id']}/_history/1"
    assert created.headers["etag"] == 'W/"1"'
    listed = (await client.get("/peer/v1/assessments", params={"participant_id": people["a"]})).json()["items"]
    assert len(listed) == 1
    record = listed[0]
    assert body["identifier"]["value"] == record["id"]
    assert (record["instrument"], record["total"], record["band"]) == ("phq-9", 10, "moderate")
    assert (record["administered_by"], record["specialist_id"]) == ("participant", None)
    assert record["flags"] == ["self-harm-thoughts"]
    assert datetime.fromisoformat(record["completed_at"]) == datetime(2026, 1, 3, 17, 15, tzinfo=UTC)
    outcomes = (await client.get(f"/peer/v1/participants/{people['a']}/outcomes")).json()
    assert [p["total"] for s in outcomes["series"] for p in s["points"]] == [10]


async def test_a_program_specialist_as_author_administered_it(client, program, people):
    role = fhir_id(program.identifier_system, "specialist-role", people["specialist"])
    practitioner = fhir_id(program.identifier_system, "specialist", people["specialist"])
    for author, identifier in ((f"PractitionerRole/{role}", "QR-R"), (f"Practitioner/{practitioner}", "QR-P")):
        body = response_for(patient_id(program, people["a"]), author={"reference": author})
        body["identifier"] = {"system": QR_SYSTEM, "value": identifier}
        created = await post(client, body)
        assert created.status_code == 201, created.text
        assert created.json()["author"]["reference"] == f"Practitioner/{practitioner}"
    listed = (await client.get("/peer/v1/assessments", params={"participant_id": people["a"]})).json()["items"]
    assert {(a["administered_by"], a["specialist_id"]) for a in listed} == {("peer-specialist", people["specialist"])}
    # an author PeerLink does not hold (a clinic's clinician) is not taken for a specialist
    body = response_for(patient_id(program, people["a"]), author={"reference": "Practitioner/someone-else"})
    body["identifier"] = {"system": QR_SYSTEM, "value": "QR-X"}
    created = await post(client, body)
    assert created.status_code == 201
    assert "source" in created.json()  # administered by the participant themself


async def test_resend_conditional_create_and_amendment(client, database, program, people):
    patient = patient_id(program, people["a"])
    first = await post(client, response_for(patient))
    assert first.status_code == 201
    again = await post(client, response_for(patient))
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    conditional = await post(
        client,
        response_for(patient, identifier={"system": QR_SYSTEM, "value": "QR-2"}),
        condition=f"identifier={QR_SYSTEM}|QR-1",
    )
    assert conditional.status_code == 200 and conditional.json()["id"] == first.json()["id"]
    own = first.json()["identifier"]
    conditional = await post(client, response_for(patient), condition=f"identifier={own['system']}|{own['value']}")
    assert conditional.status_code == 200
    assert await stored(database) == (1, 1)

    corrected = response_for(patient, status="amended")
    corrected["item"][8]["answer"] = [{"valueCoding": {"system": "http://loinc.org", "code": "LA6568-5"}}]
    amended = await post(client, corrected)
    assert amended.status_code == 201, amended.text
    assert amended.json()["status"] == "amended" and amended.json()["id"] != first.json()["id"]
    assert (await post(client, corrected)).status_code == 200  # the same correction twice is one
    records = (await client.get("/peer/v1/assessments", params={"participant_id": people["a"]})).json()["items"]
    fix = next(r for r in records if r["status"] == "amended")
    assert fix["amends_id"] == own["value"] and (fix["total"], fix["flags"]) == (9, [])
    outcomes = (await client.get(f"/peer/v1/participants/{people['a']}/outcomes")).json()
    assert [p["assessment_id"] for s in outcomes["series"] for p in s["points"]] == [fix["id"]]
    # the same identifier for another person is not a resend
    clash = await post(client, response_for(patient_id(program, people["b"])))
    assert clash.status_code == 409 and issue(clash)["code"] == "conflict"


def _missing(body):
    del body["item"][8]


def _bad_answer(body):
    body["item"][3]["answer"] = [{"valueInteger": 7}]


def _unknown_questionnaire(body):
    body["questionnaire"] = "https://elsewhere.example.org/Questionnaire/phq-9"


def _unknown_patient(body):
    body["subject"] = {"reference": "Patient/no-such-patient"}


def _in_progress(body):
    body["status"] = "in-progress"


def _deep(body: dict[str, Any]) -> bytes:
    """Groups nested 300 deep (orjson will not write that deep; the standard library will)."""
    group: dict[str, Any] = {"linkId": "x"}
    for level in range(300):
        group = {"linkId": f"g{level}", "item": [group]}
    body["item"].append(group)
    return json.dumps(body).encode()


REFUSALS = [
    (_missing, 422, "QuestionnaireResponse.item.where(linkId='44260-8')"),
    (_bad_answer, 422, "QuestionnaireResponse.item[3]"),
    (_unknown_questionnaire, 422, "QuestionnaireResponse.questionnaire"),
    (_unknown_patient, 422, "QuestionnaireResponse.subject"),
    (_in_progress, 422, "QuestionnaireResponse.status"),
]


async def test_refusals_name_the_element_and_store_nothing(client, database, program, people):
    patient = patient_id(program, people["a"])
    for change, status, expression in REFUSALS:
        body = response_for(patient)
        change(body)
        refused = await post(client, body)
        assert refused.status_code == status, (change.__name__, refused.text)
        assert issue(refused)["expression"] == [expression], change.__name__
        if change is _bad_answer:  # the item by its linkId, never the value sent
            diagnostics = issue(refused)["diagnostics"].split("(request id")[0]
            assert "44254-1" in diagnostics and "7" not in diagnostics.replace("44254-1", "")
    others = [
        (b"{", FHIR, None, 400),
        (orjson.dumps(response_for(patient)), "text/plain", None, 415),
        (orjson.dumps({"resourceType": "Observation"}), FHIR, None, 400),
        (orjson.dumps([response_for(patient)]), FHIR, None, 400),
        (orjson.dumps(response_for(patient)), FHIR, "patient=Patient/x", 400),
        (orjson.dumps(response_for(patient)), FHIR, "identifier=nobar", 400),
        (_deep(response_for(patient)), FHIR, None, 422),
    ]
    for raw, content_type, condition, status in others:
        refused = await post(client, raw, content_type=content_type, condition=condition)
        assert refused.status_code == status, refused.text
        assert refused.json()["resourceType"] == "OperationOutcome"
    assert await stored(database) == (0, 0)


async def test_scopes_and_the_clinic_boundary(anonymous, client, database, program, people):
    reader = await token_headers(anonymous, database, program, "reader", "system/*.rs")
    a, b = patient_id(program, people["a"]), patient_id(program, people["b"])
    refused = await post(anonymous, response_for(a), reader)
    assert refused.status_code == 403 and "QuestionnaireResponse.c" in issue(refused)["diagnostics"]

    clinic = await token_headers(anonymous, database, program, "clinic", CLINIC_SCOPES, organization=CLINIC)
    # before the clinic refers anyone, no participant lies inside its boundary
    outside = await post(anonymous, response_for(a), clinic)
    assert outside.status_code == 422 and issue(outside)["expression"] == ["QuestionnaireResponse.subject"]
    referral = {
        "resourceType": "ServiceRequest",
        "identifier": [{"system": PLACER, "value": "ORD-1"}],
        "status": "active",
        "intent": "order",
        "subject": {"reference": f"Patient/{a}"},
        "authoredOn": "2026-01-03T09:15:00-08:00",
        "requester": {"display": "Better Health Clinic"},
        "reasonCode": [{"text": "Isolation after discharge"}],
    }
    sent = await anonymous.post(
        "/fhir/ServiceRequest", content=orjson.dumps(referral), headers={"Content-Type": FHIR, **clinic}
    )
    assert sent.status_code == 201, sent.text
    inside = await post(anonymous, response_for(a), clinic)
    assert inside.status_code == 201, inside.text
    # the other participant exists, but not for this clinic: refused as if it did not
    other = await post(anonymous, response_for(b, identifier={"system": QR_SYSTEM, "value": "QR-B"}), clinic)
    nowhere = await post(anonymous, response_for("no-such-patient"), clinic)
    assert other.status_code == nowhere.status_code == 422
    diagnostics = [issue(r)["diagnostics"].split(" (request id")[0] for r in (other, nowhere)]
    assert diagnostics[0] == diagnostics[1]
    by_mrn = response_for(a, identifier={"system": QR_SYSTEM, "value": "QR-M"})
    by_mrn["subject"] = {"identifier": {"system": MRN_SYSTEM, "value": "MRN-1"}}
    assert (await post(anonymous, by_mrn, clinic)).status_code == 201
    listed = (await client.get("/peer/v1/assessments")).json()["items"]
    assert {r["participant_id"] for r in listed} == {people["a"]} and len(listed) == 2


async def test_the_capability_statement_lists_the_create(anonymous):
    statement = (await anonymous.get("/fhir/metadata")).json()
    entry = next(r for r in statement["rest"][0]["resource"] if r["type"] == "QuestionnaireResponse")
    assert {"code": "create"} in entry["interaction"]
