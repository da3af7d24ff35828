"""Outcome assessments to the sandbox EHR (in process): queued only under a consent naming the category
`assessments` for a connection pushing `assessments`; delivered as the QuestionnaireResponse before
the Observations derived from it, the panel after its members, in one Bundle or, when the EHR refuses
Bundles, as single writes; a correction sends the corrected one again as entered-in-error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from mappings.ids import fhir_id
from service.auth.backend_client import load_private_key, public_jwks
from service.exchange.outgoing import Outgoing, in_order
from service.exchange.worker import Worker
from service.sandbox import ClientRegistration
from tests.api.test_assessments import phq9
from tests.exchange.sandbox_holdings import delivered
from tests.exchange.support import HOSPITAL, HOSPITAL_KEY, add_connection, fast_settings, private_key_file, states
from tests.factories import at, consent_body, create, encounter_body, participant_body, specialist_body
from tests.sandbox.support import ROOT, Harness


class Recording(httpx.AsyncBaseTransport):
    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.seen: list[tuple[str, str]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.seen.append((request.method, request.url.path))
        return await self.inner.handle_async_request(request)


@pytest.fixture
async def pushing(sandbox: Harness, database, program, tmp_path: Path) -> Harness:
    """The connection ``hospital`` at the sandbox pushes assessments (and referral status)."""
    key_file = private_key_file(tmp_path)
    jwks = public_jwks(load_private_key(key_file.read_bytes()))
    sandbox.sandbox.register_client(
        ClientRegistration.model_validate({"client_id": "peerlink", "scopes": "system/*.cruds", "jwks": jwks})
    )
    await add_connection(
        database,
        program,
        tmp_path,
        base_url=f"{ROOT}{sandbox.fhir}",
        organization=HOSPITAL_KEY,
        key_file=str(key_file),
        push=["assessments", "referral-status"],
    )
    return sandbox


async def assessed(client: httpx.AsyncClient, categories: list[str]) -> dict[str, Any]:
    """A participant consenting to share ``categories`` with the hospital, and a PHQ-9 given in a session."""
    specialist = (await create(client, "specialists", specialist_body()))["id"]
    participant = (await create(client, "participants", participant_body()))["id"]
    recipient = {"name": "General Hospital", "identifier": HOSPITAL}
    await create(client, "consents", consent_body(participant, recipient=recipient, categories=categories))
    encounter = (await create(client, "encounters", encounter_body(participant, specialist)))["id"]
    answers = [{"link_id": k, "value": v} for k, v in phq9([1, 2, 1, 0, 1, 2, 0, 1, 0]).items()]
    body = {
        "participant_id": participant,
        "instrument": "phq-9",
        "answers": answers,
        "administered_by": "peer-specialist",
        "specialist_id": specialist,
        "encounter_id": encounter,
        "completed_at": at(2).isoformat(),
    }
    created = await client.post("/peer/v1/assessments", json=body)
    assert created.status_code == 201, created.text
    return {"participant": participant, "specialist": specialist, "assessment": created.json()["id"], **body}


def at_ehr(sandbox: Harness, reference: str) -> dict[str, Any] | None:
    resource_type, resource_id = reference.split("/", 1)
    current = sandbox.sandbox.store.current(resource_type, resource_id)
    return None if current is None else current.resource


@pytest.mark.parametrize("refuse", [0, 405])
async def test_an_assessment_reaches_the_ehr_in_order(pushing, client, database, settings, program, refuse):
    if refuse:
        await pushing.admin.set_knobs(refuse_bundles=refuse)
    made = await assessed(client, ["demographics", "assessments"])
    recording = Recording(pushing.transport)
    assert await Worker(database, fast_settings(settings), transport=recording).drain() == 1

    system = program.identifier_system
    response = f"QuestionnaireResponse/{fhir_id(system, 'assessment', made['assessment'])}"
    panel = f"Observation/{fhir_id(system, 'assessment-observation', made['assessment'] + '/panel')}"
    total = f"Observation/{fhir_id(system, 'assessment-observation', made['assessment'] + '/total')}"
    held = await delivered(database)
    observations = [r for r in held if r.startswith("Observation/")]
    assert response in held and len(observations) == 11  # panel, total and nine items
    assert {r.split("/")[0] for r in held} >= {"Patient", "Practitioner", "Encounter"}
    stored = at_ehr(pushing, total)
    assert stored is not None and stored["valueInteger"] == 8 and stored["derivedFrom"] == [{"reference": response}]
    assert at_ehr(pushing, response)["status"] == "completed"  # type: ignore[index]
    assert len(at_ehr(pushing, panel)["hasMember"]) == 10  # type: ignore[index]
    writes = [path.rsplit("/", 2)[-2] + "/" + path.rsplit("/", 1)[-1] for m, path in recording.seen if m == "PUT"]
    if refuse:  # one by one: what is referenced first, the panel last
        assert [m for m, p in recording.seen if p == pushing.fhir] == ["POST"]  # the refused Bundle
        ours = [w for w in writes if w.split("/")[0] in ("QuestionnaireResponse", "Observation")]
        assert ours[0] == response and ours[-1] == panel and len(ours) == 12
        patient = f"Patient/{fhir_id(system, 'participant', made['participant'])}"
        assert writes.index(patient) < writes.index(response)
    else:
        assert writes == [] and ("POST", pushing.fhir) in recording.seen


async def test_without_the_assessments_category_nothing_is_queued(pushing, client, database, settings):
    await assessed(client, ["demographics", "encounters", "notes", "care-team", "referrals", "goals"])
    assert [kind for kind, _, _ in await states(database)] == []
    assert await Worker(database, fast_settings(settings)).drain() == 0
    assert pushing.sandbox.store.counts()["Observation"] == 0


async def test_a_correction_sends_the_corrected_one_again_entered_in_error(
    pushing, client, database, settings, program
):
    made = await assessed(client, ["assessments"])
    worker = Worker(database, fast_settings(settings), transport=pushing.transport)
    assert await worker.drain() == 1
    kept = ("administered_by", "specialist_id", "encounter_id", "completed_at")
    correction: dict[str, Any] = {k: made[k] for k in kept}
    correction["answers"] = [{"link_id": k, "value": 0} for k in phq9([0] * 9)]
    amended = await client.post(f"/peer/v1/assessments/{made['assessment']}/amend", json=correction)
    assert amended.status_code == 201, amended.text
    assert [kind for kind, state, _ in await states(database) if state == "pending"] == ["assessment", "assessment"]
    assert await Worker(database, fast_settings(settings), transport=pushing.transport).drain() == 2
    system = program.identifier_system
    old = at_ehr(pushing, f"Observation/{fhir_id(system, 'assessment-observation', made['assessment'] + '/total')}")
    new_id = fhir_id(system, "assessment-observation", amended.json()["id"] + "/total")
    new = at_ehr(pushing, f"Observation/{new_id}")
    assert old is not None and old["status"] == "entered-in-error" and old["valueInteger"] == 8
    assert new is not None and (new["status"], new["valueInteger"]) == ("amended", 0)


def test_the_order_puts_the_response_first_and_the_panel_last():
    def observation(name: str, *members: str) -> Outgoing:
        resource: dict[str, Any] = {
            "resourceType": "Observation",
            "id": name,
            "derivedFrom": [{"reference": "QuestionnaireResponse/qr"}],
        }
        if members:
            resource["hasMember"] = [{"reference": f"Observation/{m}"} for m in members]
        return Outgoing(resource, True)

    items = [
        observation("a-panel", "b-item", "c-total"),
        observation("c-total"),
        Outgoing({"resourceType": "QuestionnaireResponse", "id": "qr"}, True),
        observation("b-item"),
        Outgoing({"resourceType": "Patient", "id": "p"}, False),
    ]
    assert [o.reference for o in in_order(items)] == [
        "Patient/p",
        "QuestionnaireResponse/qr",
        "Observation/b-item",
        "Observation/c-total",
        "Observation/a-panel",
    ]


def test_the_push_kind_assessments_needs_writes_of_the_answers_and_scores():
    from service.exchange.needed_scopes import default_scopes, missing, needed

    need = needed(["assessments"], False)
    assert need["QuestionnaireResponse"] == "cu" and need["Observation"] == "cu" and need["Patient"] == "cu"
    assert "system/Observation.cru" in default_scopes(["assessments"], False).split()
    # the referral's Task lists outcome scores: they are written ahead of it
    assert needed(["referral-status"], False)["Observation"] == "cu"
    assert missing(need, "system/*.cru") == []
    assert "system/QuestionnaireResponse.cu" in missing(need, "system/Observation.cru system/Patient.cru")


async def test_the_admin_api_takes_the_push_kind_and_resync_queues_the_assessments(client, database, program, tmp_path):
    await add_connection(database, program, tmp_path)  # pushes encounters and notes
    made = await assessed(client, ["assessments"])
    assert [kind for kind, _, _ in await states(database)] == []
    wrong = await client.patch("/admin/v1/ehr-connections/hospital", json={"push": ["surveys"]})
    assert wrong.status_code == 422 and "assessments" in wrong.json()["detail"]
    changed = await client.patch("/admin/v1/ehr-connections/hospital", json={"push": ["encounters", "assessments"]})
    assert changed.status_code == 200, changed.text
    assert changed.json()["push"] == ["encounters", "assessments"]
    resync = await client.post("/admin/v1/ehr-connections/hospital/resync", json={})
    assert resync.status_code == 200, resync.text
    assert [kind for kind, state, _ in await states(database) if state == "pending"] == ["assessment"]
    listed = (await client.get("/admin/v1/ehr-connections")).json()
    assert listed[0]["push"] == ["encounters", "assessments"] and made["assessment"]
