"""Referral polling and the closed loop: a clinic's Task at the EHR becomes a referral here (once,
however often it is polled); every step the peer team takes shows on that Task."""

from __future__ import annotations

import httpx
import pytest
import respx
from sqlalchemy import select

from service.exchange.worker import Worker
from service.store.tables import ehr_referrals
from tests.exchange.support import FakeEhr, add_connection, fast_settings, states
from tests.factories import create, specialist_body


@pytest.fixture
def ehr():
    with respx.mock(assert_all_called=False) as router:
        yield FakeEhr(router)


@pytest.fixture
async def polling(database, program, tmp_path):
    await add_connection(
        database,
        program,
        tmp_path,
        push=["encounters", "notes", "referral-status"],
        poll_referrals=True,
        task_owner="Organization/peer",
    )


@pytest.fixture
def worker(database, settings):
    return Worker(database, fast_settings(settings))


async def accept(client, referral_id):
    """The peer team receives the referral and accepts it, assigning a peer."""
    specialist = (await create(client, "specialists", specialist_body()))["id"]
    for action, extra in (("receive", {}), ("accept", {"specialist_id": specialist})):
        response = await client.post(f"/peer/v1/referrals/{referral_id}/{action}", json={"by": "intake", **extra})
        assert response.status_code == 200, response.text


async def referrals(client):
    return (await client.get("/peer/v1/referrals")).json()["items"]


async def test_a_polled_task_becomes_one_referral(ehr, polling, worker, client, database):
    task_id = ehr.seed_referral()
    assert await worker.poll_due(force="hospital") == 1
    (referral,) = await referrals(client)
    assert referral["status"] == "requested"
    assert referral["referring_organization"]["name"] == "General Hospital"
    async with database.read() as conn:
        linked = (await conn.execute(select(ehr_referrals.c.task_id, ehr_referrals.c.referral_id))).all()
    assert [(t, r) for t, r in linked] == [(task_id, referral["id"])]
    participants = (await client.get("/peer/v1/participants")).json()["items"]
    assert len(participants) == 1  # the EHR's Patient became a participant (flagged for review)
    # polled again, and again from scratch: still one referral
    assert await worker.poll_due(force="hospital") == 0
    assert "_lastUpdated=gt2026-11-20T10%3A00%3A00Z" in ehr.searches[-1] or "gt2026-11-20T10:00:00Z" in ehr.searches[-1]
    async with database.transaction() as conn:
        from service.store.tables import ehr_connections

        await conn.execute(ehr_connections.update().values(poll_cursor=None))
    assert await worker.poll_due(force="hospital") == 0
    assert len(await referrals(client)) == 1


async def test_polling_waits_for_its_interval(ehr, polling, worker):
    ehr.seed_referral()
    assert await worker.poll_due() == 1
    assert await worker.poll_due() == 0  # not due again for an hour
    assert len(ehr.searches) == 1


async def test_the_peer_teams_steps_show_on_the_clinics_task(ehr, polling, worker, client, database):
    task_id = ehr.seed_referral()
    await worker.poll_due(force="hospital")
    (referral,) = await referrals(client)
    await accept(client, referral["id"])
    await worker.drain()
    task = ehr.resources[f"Task/{task_id}"]
    assert task["status"] == "accepted"
    assert task["focus"] == {"reference": "ServiceRequest/sr-ORD-1"}  # the clinic's own elements are kept
    assert task["owner"] == {"reference": "Organization/peer"}
    assert {s for k, s, _ in await states(database) if k == "referral"} == {"delivered"}


async def test_a_412_rereads_the_task_and_applies_the_step_again(ehr, polling, worker, client):
    task_id = ehr.seed_referral()
    await worker.poll_due(force="hospital")
    (referral,) = await referrals(client)
    await accept(client, referral["id"])
    ehr.faults = [httpx.Response(412, json={"resourceType": "OperationOutcome", "issue": [{"code": "conflict"}]})]
    await worker.drain()
    assert ehr.resources[f"Task/{task_id}"]["status"] == "accepted"
    puts = [r for r in ehr.requests if r.method == "PUT" and r.url.path.endswith(task_id)]
    assert len(puts) >= 2 and all(r.headers["if-match"].startswith('W/"') for r in puts)


async def test_a_step_no_longer_legal_at_the_clinic_is_dead_lettered(ehr, polling, worker, client, database):
    task_id = ehr.seed_referral()
    await worker.poll_due(force="hospital")
    (referral,) = await referrals(client)
    ehr.resources[f"Task/{task_id}"]["status"] = "cancelled"  # the clinic withdrew it meanwhile
    await accept(client, referral["id"])
    await worker.drain()
    (row, *_) = [(s, e) for k, s, e in await states(database) if k == "referral"]
    assert row == ("dead", "the EHR's Task is cancelled; the referral's transition no longer applies")
