"""Delivery to an EHR through the outbox, with every fault an EHR network produces (respx): each ends
delivered exactly once, or dead-lettered with its reason; nothing is lost."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
import respx
from sqlalchemy import select

from mappings.ids import fhir_id
from service.exchange.worker import Worker
from service.store.tables import outbox
from tests.exchange.support import (
    FakeEhr,
    add_connection,
    consented_session,
    fast_settings,
    make_due,
    states,
)

OUTCOME_422 = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "invalid"}]}


@pytest.fixture
def ehr():
    with respx.mock(assert_all_called=False) as router:
        yield FakeEhr(router)


@pytest.fixture
async def world(client, database, program, tmp_path):
    await add_connection(database, program, tmp_path)
    return await consented_session(client)


@pytest.fixture
def worker(database, settings):
    return Worker(database, fast_settings(settings))


def ids(program, world):
    system = program.identifier_system
    return {
        "encounter": f"Encounter/{fhir_id(system, 'encounter', world['encounter'])}",
        "note": f"DocumentReference/{fhir_id(system, 'note', world['note'])}",
        "patient": f"Patient/{fhir_id(system, 'participant', world['participant'])}",
    }


async def drain(worker: Worker) -> int:
    return await worker.drain()


async def test_a_session_and_its_signed_note_reach_the_ehr_exactly_once(ehr, world, worker, database, program):
    assert [(k, s) for k, s, _ in await states(database)] == [("encounter", "pending"), ("note", "pending")]
    assert await drain(worker) == 2
    assert [(k, s) for k, s, _ in await states(database)] == [("encounter", "delivered"), ("note", "delivered")]
    expected = ids(program, world)
    assert ehr.held("Encounter") == [expected["encounter"]]
    assert ehr.held("DocumentReference") == [expected["note"]]
    assert ehr.held("Patient") == [expected["patient"]]
    assert ehr.writes[expected["encounter"]] == 1 and ehr.writes[expected["patient"]] == 1
    note = ehr.resources[expected["note"]]
    assert note["subject"]["reference"] == expected["patient"]
    assert await drain(worker) == 0  # nothing sent twice


async def test_a_change_resends_only_what_changed(ehr, world, worker, database, program, client):
    await drain(worker)
    expected = ids(program, world)
    changed = await client.patch(f"/peer/v1/encounters/{world['encounter']}", json={"modality": "phone"})
    assert changed.status_code == 200, changed.text
    assert await drain(worker) == 1
    assert ehr.writes[expected["encounter"]] == 2
    assert ehr.writes[expected["patient"]] == 1  # unchanged dependency not sent again


async def test_without_consent_nothing_is_queued(ehr, client, database, program, tmp_path, worker):
    await add_connection(database, program, tmp_path)
    await consented_session(client, consent=False)
    assert await states(database) == []
    assert await drain(worker) == 0
    assert ehr.resources == {}


async def test_a_revoked_consent_withholds_what_was_queued(ehr, world, worker, database, client):
    consents = (await client.get("/peer/v1/consents", params={"participant_id": world["participant"]})).json()
    revoked = await client.post(f"/peer/v1/consents/{consents['items'][0]['id']}/revoke")
    assert revoked.status_code == 200, revoked.text
    await drain(worker)
    assert {s for _, s, _ in await states(database)} == {"withheld"}
    assert ehr.resources == {}


RETRYABLE = [
    pytest.param(httpx.Response(500), "HTTP 500", id="500"),
    pytest.param(httpx.Response(502), "HTTP 502", id="502"),
    pytest.param(httpx.Response(503, headers={"Retry-After": "30"}), "HTTP 503", id="503-retry-after"),
    pytest.param(httpx.Response(429, headers={"Retry-After": "20"}), "HTTP 429", id="429-retry-after"),
    pytest.param(httpx.ConnectTimeout("connect timeout"), "timeout: ConnectTimeout", id="connect-timeout"),
    pytest.param(httpx.ReadTimeout("read timeout"), "timeout: ReadTimeout", id="read-timeout"),
    pytest.param(httpx.ReadError("connection reset by peer"), "connection failed: ReadError", id="connection-reset"),
    pytest.param(httpx.Response(200, content=b"{not json"), "not valid JSON", id="malformed-json"),
    pytest.param(httpx.Response(412, json=OUTCOME_422), "HTTP 412", id="412"),
]


@pytest.mark.parametrize(("fault", "reason"), RETRYABLE)
async def test_a_transient_fault_is_retried_until_delivered(ehr, world, worker, database, program, fault, reason):
    ehr.faults = [fault]
    before = datetime.now(UTC)
    await worker.run_once()
    (first, *_rest) = await states(database)
    assert first[0] == "encounter" and first[1] == "pending" and reason in first[2]
    async with database.read() as conn:
        row = (await conn.execute(select(outbox).order_by(outbox.c.pk).limit(1))).one()
    assert row.attempts == 1
    retry_after = fault.headers.get("Retry-After") if isinstance(fault, httpx.Response) else None
    if retry_after:  # the server's Retry-After is honoured
        assert row.next_attempt_at >= before + timedelta(seconds=int(retry_after) - 1)
    await make_due(database)
    await drain(worker)
    assert {s for _, s, _ in await states(database)} == {"delivered"}
    expected = ids(program, world)
    assert ehr.held("Encounter") == [expected["encounter"]]  # exactly one, whatever the EHR saw twice
    assert ehr.held("DocumentReference") == [expected["note"]]


async def test_an_expired_token_is_renewed_once_and_the_delivery_goes_through(ehr, world, worker, database):
    await worker.run_once()  # first delivery, first token
    ehr.expire_tokens()
    await drain(worker)
    assert {s for _, s, _ in await states(database)} == {"delivered"}
    assert ehr.token_requests == 2
    assert any(r.headers.get("authorization") == "Bearer tok-2" for r in ehr.requests)


@pytest.mark.parametrize("status", [400, 422])
async def test_an_operation_outcome_refusal_dead_letters_at_once(ehr, world, worker, database, client, status):
    ehr.faults = [httpx.Response(status, json=OUTCOME_422)]
    await worker.run_once()
    (first, *_rest) = await states(database)
    assert first[1] == "dead" and first[2] == f"HTTP {status} (invalid)"
    async with database.read() as conn:
        assert (await conn.execute(select(outbox.c.attempts).order_by(outbox.c.pk).limit(1))).scalar() == 0
    # the admin API lists it and replays it; then it goes through
    listed = (await client.get("/admin/v1/deadletters")).json()
    assert [d["reason"] for d in listed] == [f"HTTP {status} (invalid)"]
    assert (await client.post("/admin/v1/deadletters/replay", json={})).json() == {"queued": 1}
    await drain(worker)
    assert {s for _, s, _ in await states(database)} == {"delivered"}


async def test_past_the_horizon_a_change_is_dead_lettered_with_the_reason(ehr, world, database, settings):
    worker = Worker(database, fast_settings(settings).model_copy(update={"retry_horizon_seconds": 0.001}))
    ehr.faults = [httpx.Response(503)] * 2
    await worker.run_once()
    (first, *_rest) = await states(database)
    assert first[1] == "dead" and first[2].startswith("gave up after") and "HTTP 503" in first[2]


async def test_a_participants_changes_arrive_in_order(ehr, world, worker, database):
    ehr.faults = [httpx.Response(500)]
    await worker.run_once()  # the session fails: its note must wait, not overtake it
    assert [(k, s) for k, s, _ in await states(database)] == [("encounter", "pending"), ("note", "pending")]
    assert ehr.held("DocumentReference") == []
    await make_due(database)
    await drain(worker)
    writes = [r for r in ehr.requests if r.method in ("POST", "PUT")]
    bodies = [r.content for r in writes]
    encounter_first = next(i for i, b in enumerate(bodies) if b'"Encounter"' in b and b"DocumentReference" not in b)
    note_first = next(i for i, b in enumerate(bodies) if b"DocumentReference" in b)
    assert encounter_first < note_first


async def test_an_open_circuit_stops_calls_to_a_failing_ehr(ehr, client, database, program, tmp_path, settings):
    await add_connection(database, program, tmp_path)
    for _ in range(3):
        await consented_session(client)
    worker = Worker(database, fast_settings(settings).model_copy(update={"circuit_failures": 2, "outbox_batch": 1}))
    ehr.faults = [httpx.Response(503)] * 10
    await worker.run_once()
    await worker.run_once()
    calls = len(ehr.requests)
    assert await worker.run_once() == 0  # open: nothing claimed, nothing sent
    assert len(ehr.requests) == calls


async def test_an_ehr_without_transactions_gets_single_writes(client, database, program, tmp_path, settings):
    with respx.mock(assert_all_called=False) as router:
        ehr = FakeEhr(router, transaction=False)
        await add_connection(database, program, tmp_path)
        world = await consented_session(client)
        await Worker(database, fast_settings(settings)).drain()
    assert {s for _, s, _ in await states(database)} == {"delivered"}
    assert all(r.method != "POST" or r.url.path.endswith("/token") for r in ehr.requests)
    assert ehr.held("Encounter") == [ids(program, world)["encounter"]]


async def test_an_ehr_that_takes_no_encounters_dead_letters_them_and_says_why(
    client, database, program, tmp_path, settings
):
    with respx.mock(assert_all_called=False) as router:
        FakeEhr(
            router, update_types=("Patient", "Practitioner", "PractitionerRole", "Organization", "DocumentReference")
        )
        await add_connection(database, program, tmp_path)
        await consented_session(client)
        await Worker(database, fast_settings(settings)).drain()
    assert (await states(database))[0][1:] == ("dead", "the EHR accepts no writes of Encounter")


async def test_metrics_per_connection(ehr, world, worker, client):
    ehr.faults = [httpx.Response(500)]
    await worker.run_once()
    metrics = (await client.get("/admin/v1/exchange/metrics")).json()["hospital"]
    assert metrics["queue_depth"] == 2 and metrics["retried"] == 1 and metrics["delivered"] == 0
    assert metrics["oldest_waiting_seconds"] >= 0


async def outbox_rows(database) -> list[tuple[str, str, int, str | None]]:
    """(kind, state, attempts, claimed_by) of every row, oldest first."""
    q = outbox.c
    async with database.read() as conn:
        rows = await conn.execute(select(q.kind, q.state, q.attempts, q.claimed_by).order_by(q.pk))
        return [tuple(r) for r in rows]


def first_write_of(ehr: FakeEhr, resource_type: str) -> int:
    writes = [r.content for r in ehr.requests if r.method in ("POST", "PUT")]
    return next(i for i, body in enumerate(writes) if f'"resourceType":"{resource_type}"'.encode() in body)


async def test_a_batch_claimed_behind_a_failing_one_goes_back_unsent(ehr, world, database, settings):
    # one change per batch: the note is claimed behind its session while the session is on the wire
    worker = Worker(database, fast_settings(settings).model_copy(update={"outbox_batch": 1}))
    ehr.faults = [httpx.Response(503, headers={"Retry-After": "60"})]
    assert await worker.drain() == 1  # the session, retried later; the note was given back, not counted
    assert await outbox_rows(database) == [("encounter", "pending", 1, None), ("note", "pending", 0, None)]
    assert not any(b"DocumentReference" in r.content for r in ehr.requests)
    await make_due(database)
    assert await worker.drain() == 2
    assert {s for _, s, _ in await states(database)} == {"delivered"}
    assert first_write_of(ehr, "Encounter") < first_write_of(ehr, "DocumentReference")


async def test_a_refused_batch_is_split_and_what_waits_behind_it_follows_in_order(ehr, world, database, settings):
    worker = Worker(database, fast_settings(settings).model_copy(update={"outbox_batch": 1}))
    ehr.faults = [httpx.Response(422, json=OUTCOME_422)]  # the Bundle is refused once; the split resend goes
    assert await worker.drain() == 2
    assert {s for _, s, _ in await states(database)} == {"delivered"}
    assert first_write_of(ehr, "Encounter") < first_write_of(ehr, "DocumentReference")


async def test_batches_in_a_row_send_each_resource_once(ehr, client, database, program, tmp_path, settings):
    """Each batch is gathered before the one ahead of it is recorded: what that one wrote counts as held."""
    await add_connection(database, program, tmp_path)
    worlds = [await consented_session(client) for _ in range(3)]
    worker = Worker(database, fast_settings(settings).model_copy(update={"outbox_batch": 2}))
    assert await worker.drain() == 6
    assert {s for _, s, _ in await states(database)} == {"delivered"}
    for world in worlds:
        expected = ids(program, world)
        assert ehr.writes[expected["encounter"]] == 1 and ehr.writes[expected["patient"]] == 1
        assert ehr.writes[expected["note"]] == 1


async def test_without_bundles_a_batch_goes_a_request_per_resource(ehr, client, database, program, tmp_path, settings):
    await add_connection(database, program, tmp_path)
    worlds = [await consented_session(client) for _ in range(2)]
    worker = Worker(database, fast_settings(settings).model_copy(update={"outbox_bundles": False}))
    assert await worker.drain() == 4
    assert {s for _, s, _ in await states(database)} == {"delivered"}
    writes = [r for r in ehr.requests if r.method in ("POST", "PUT") and not r.url.path.endswith("/token")]
    assert all(r.method == "PUT" for r in writes)  # no transaction Bundle
    assert len(writes) == len(ehr.resources) == sum(ehr.writes.values())  # each resource once
    for world in worlds:
        assert ehr.writes[ids(program, world)["note"]] == 1
