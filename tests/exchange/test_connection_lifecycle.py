"""An EHR connection after `ehr add`: changed, switched off and on, removed, resynced; from the admin
API and the command line, each change audited. A disabled connection queues nothing new and keeps
what it had queued for when it is enabled again."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import respx
from sqlalchemy import func, select

from service.exchange import connections
from service.exchange.worker import Worker
from service.store.tables import audit_log, ehr_connections, ehr_resources, outbox
from tests.exchange.support import (
    BASE,
    FakeEhr,
    add_connection,
    consented_session,
    fast_settings,
    private_key_file,
    states,
)

PROBLEM = "application/problem+json"
URL = "/admin/v1/ehr-connections"


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


async def audited(database) -> list[tuple[str, str, str | None, dict[str, Any]]]:
    """(subtype, action, client, detail) of the admin audit events about EHR connections."""
    a = audit_log.c
    async with database.read() as conn:
        rows = await conn.execute(
            select(a.subtype, a.action, a.client_id, a.detail).where(a.subtype.like("ehr-%")).order_by(a.seq)
        )
        return [(r.subtype, r.action, r.client_id, r.detail) for r in rows]


async def connection(database, name: str = "hospital") -> connections.EhrConnection | None:
    async with database.read() as conn:
        return await connections.find(conn, name)


async def held(database, name: str = "hospital") -> int:
    async with database.read() as conn:
        return int((await conn.execute(select(func.count()).where(ehr_resources.c.connection == name))).scalar_one())


def assert_problem(response, status: int, words: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    assert words in response.json()["detail"]


# --- update ------------------------------------------------------------------------------------------


async def test_admin_update_changes_the_given_settings_and_keeps_the_rest(client, database, program, tmp_path):
    await add_connection(database, program, tmp_path)
    before = await connection(database)
    assert before is not None
    new_key = tmp_path / "rotated.pem"
    new_key.write_bytes(private_key_file(tmp_path).read_bytes())
    response = await client.patch(
        f"{URL}/hospital",
        json={"base_url": "https://ehr2.test/fhir/", "key_file": str(new_key), "rate_per_second": 5},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["base_url"], body["key"], body["rate_per_second"]) == ("https://ehr2.test/fhir", str(new_key), 5)
    assert (body["client_id"], body["push"], body["enabled"]) == ("peerlink", ["encounters", "notes"], True)
    after = await connection(database)
    assert after is not None and after.base_url == "https://ehr2.test/fhir" and after.rate_per_second == 5
    assert after != before  # a worker renews its client for the changed connection
    (event,) = await audited(database)
    assert event[:2] == ("ehr-update", "U") and event[2] == "program-admin"
    assert event[3] == {"connection": "hospital", "changed": ["base_url", "key_file", "rate_per_second"]}


async def test_a_key_rotated_in_place_renews_the_workers_client(database, program, tmp_path):
    """The same key file with new contents: `ehr update --key` marks the connection changed."""
    await add_connection(database, program, tmp_path)
    before = await connection(database)
    assert before is not None and before.key_file is not None
    from service.exchange import lifecycle

    async with database.transaction() as conn:
        await lifecycle.change(
            conn,
            "hospital",
            {"key_file": before.key_file},
            datetime.now(UTC) + timedelta(seconds=1),
            lifecycle.Actor("t"),
        )
    after = await connection(database)
    assert after is not None and after.key_file == before.key_file and after != before


async def test_admin_update_refuses_an_unknown_name_and_bad_fields(client, database, program, tmp_path):
    await add_connection(database, program, tmp_path)
    assert_problem(await client.patch(f"{URL}/nowhere", json={"rate_per_second": 5}), 404, "no EHR connection")
    assert_problem(await client.patch(f"{URL}/hospital", json={"base_url": "ftp://x"}), 422, "base_url")
    assert_problem(await client.patch(f"{URL}/hospital", json={"push": ["faxes"]}), 422, "push")
    assert_problem(await client.patch(f"{URL}/hospital", json={"poll_seconds": 10}), 422, "poll_seconds")
    assert (await client.patch(f"{URL}/hospital", json={"name": "renamed"})).status_code == 422
    assert (await client.patch(f"{URL}/hospital", json={"rate_per_second": 0})).status_code == 422
    current = await connection(database)
    assert current is not None and current.base_url == BASE and current.poll_seconds == 3600
    assert await audited(database) == []


# --- disable / enable ------------------------------------------------------------------------------------


async def test_a_disabled_connection_queues_nothing_new_and_its_rows_flow_after_enable(
    ehr, world, client, database, worker
):
    assert [(k, s) for k, s, _ in await states(database)] == [("encounter", "pending"), ("note", "pending")]
    response = await client.post(f"{URL}/hospital/disable")
    assert response.status_code == 200 and response.json()["enabled"] is False
    await consented_session(client)  # a new session and note while it is off
    assert len(await states(database)) == 2  # nothing new queued
    assert await worker.drain() == 0  # what waits is not claimed
    async with database.read() as conn:
        rows = (await conn.execute(select(outbox.c.state, outbox.c.attempts, outbox.c.last_error))).all()
    assert [(r.state, r.attempts, r.last_error) for r in rows] == [("pending", 0, None)] * 2
    assert ehr.resources == {}
    listed = (await client.get(URL)).json()
    assert listed[0]["enabled"] is False

    response = await client.post(f"{URL}/hospital/enable")
    assert response.status_code == 200 and response.json()["enabled"] is True
    assert await worker.drain() == 2
    assert [(k, s) for k, s, _ in await states(database)] == [("encounter", "delivered"), ("note", "delivered")]
    assert len(ehr.held("Encounter")) == 1 and len(ehr.held("DocumentReference")) == 1
    assert [(s, a) for s, a, _, _ in await audited(database)] == [("ehr-disable", "U"), ("ehr-enable", "U")]


async def test_disable_and_enable_answer_404_for_an_unknown_name(client, database, program, tmp_path):
    assert_problem(await client.post(f"{URL}/nowhere/disable"), 404, "no EHR connection")
    assert_problem(await client.post(f"{URL}/nowhere/enable"), 404, "no EHR connection")


async def test_a_disabled_connection_is_not_backfilled(client, database, program, tmp_path):
    await add_connection(database, program, tmp_path)
    await client.post(f"{URL}/hospital/disable")
    assert_problem(await client.post(f"{URL}/hospital/resync"), 409, "disabled")


# --- remove ---------------------------------------------------------------------------------------------


async def test_remove_is_refused_while_changes_wait_and_forced_dead_letters_them(world, client, database):
    assert_problem(await client.delete(f"{URL}/hospital"), 409, "2 change(s) wait")
    assert await connection(database) is not None
    response = await client.delete(f"{URL}/hospital", params={"force": "true"})
    assert response.status_code == 200, response.text
    assert response.json() == {"removed": "hospital", "dead_lettered": 2, "forgotten": 0}
    assert await connection(database) is None
    assert [(s, e) for _, s, e in await states(database)] == [("dead", "the connection was removed")] * 2
    dead = (await client.get("/admin/v1/deadletters", params={"connection": "hospital"})).json()
    assert len(dead) == 2  # kept and listed, not silently dropped
    assert_problem(await client.delete(f"{URL}/hospital"), 404, "no EHR connection")
    ((subtype, action, _, detail),) = await audited(database)
    assert (subtype, action, detail) == (
        "ehr-remove",
        "D",
        {"connection": "hospital", "dead_lettered": 2, "forgotten": 0},
    )


async def test_remove_forgets_what_the_ehr_holds_so_a_new_connection_of_that_name_starts_clean(
    ehr, world, client, database, program, tmp_path, worker
):
    assert await worker.drain() == 2
    assert await held(database) > 0
    response = await client.delete(f"{URL}/hospital")
    assert response.status_code == 200, response.text
    assert response.json()["dead_lettered"] == 0 and response.json()["forgotten"] > 0
    assert await held(database) == 0
    await add_connection(database, program, tmp_path)  # the same name again
    async with database.read() as conn:
        assert (await conn.execute(select(ehr_connections.c.enabled))).scalar_one() is True


async def test_remove_is_refused_while_a_worker_delivers_to_it_even_forced(world, client, database):
    async with database.transaction() as conn:
        await conn.execute(outbox.update().values(state="sending", claimed_by="w", claimed_until=datetime.now(UTC)))
    assert_problem(await client.delete(f"{URL}/hospital", params={"force": "true"}), 409, "disable it")
    assert await connection(database) is not None


# --- resync -------------------------------------------------------------------------------------------------


async def test_resync_delivers_everything_again_to_an_ehr_that_lost_it(ehr, world, client, database, worker):
    assert await worker.drain() == 2
    delivered = dict(ehr.writes)
    assert await worker.drain() == 0
    ehr.resources.clear()  # the EHR was reset
    response = await client.post(f"{URL}/hospital/resync")
    assert response.status_code == 200, response.text
    assert response.json() == {"forgotten": len(delivered), "queued": 2}
    assert await worker.drain() == 2
    assert set(ehr.resources) == set(delivered)
    assert all(ehr.writes[key] == 2 for key in delivered)  # once before the reset, once after: no duplicate
    ((subtype, action, _, detail),) = await audited(database)
    assert (subtype, action, detail) == (
        "ehr-resync",
        "U",
        {"connection": "hospital", "forgotten": len(delivered), "queued": 2},
    )


async def test_resync_since_forgets_only_what_was_delivered_since(ehr, world, client, database, worker):
    assert await worker.drain() == 2
    total = await held(database)
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    response = await client.post(f"{URL}/hospital/resync", json={"since": later})
    assert response.status_code == 200 and response.json()["forgotten"] == 0
    assert await held(database) == total
    response = await client.post(f"{URL}/hospital/resync", json={"since": "2020-01-01"})
    assert response.json()["forgotten"] == total
    assert_problem(await client.post(f"{URL}/hospital/resync", json={"since": "yesterday"}), 422, "since")
    assert_problem(await client.post(f"{URL}/nowhere/resync"), 404, "no EHR connection")


# --- the command line ------------------------------------------------------------------------------------


@pytest.fixture
def cli(database, monkeypatch):
    from typer.testing import CliRunner

    from service.cli.exchange import ehr_app
    from service.settings import get_settings

    monkeypatch.setenv("PEERLINK_DATABASE_URL", database.url.render_as_string(hide_password=False))
    get_settings.cache_clear()
    runner = CliRunner()

    async def run(*args: str) -> Any:
        return await asyncio.to_thread(runner.invoke, ehr_app, list(args))

    yield run
    get_settings.cache_clear()


async def test_the_command_line_updates_disables_enables_resyncs_and_removes(ehr, world, cli, client, database, worker):
    done = await cli("update", "hospital", "--rate", "7", "--base-url", "https://ehr.test/fhir", "--no-poll-referrals")
    assert done.exit_code == 0, done.output
    assert "updated (base_url, poll_referrals, rate_per_second)" in done.output
    current = await connection(database)
    assert current is not None and current.rate_per_second == 7

    done = await cli("disable", "hospital")
    assert done.exit_code == 0 and "disabled" in done.output
    await consented_session(client)
    assert len(await states(database)) == 2
    assert await worker.drain() == 0
    done = await cli("enable", "hospital")
    assert done.exit_code == 0 and "enabled" in done.output
    assert await worker.drain() == 2

    ehr.resources.clear()
    before = await held(database)
    done = await cli("resync", "hospital")
    assert done.exit_code == 0, done.output
    # both sessions and notes: the one made while it was off was never queued, a backfill catches it up
    assert f"{before} delivered resource(s) forgotten, 4 change(s) queued" in done.output
    assert await worker.drain() == 4
    assert len(ehr.held("Encounter")) == 2

    await consented_session(client)  # two more wait
    refused = await cli("remove", "hospital")
    assert refused.exit_code == 2 and "wait for hospital" in refused.output
    done = await cli("remove", "hospital", "--force")
    assert done.exit_code == 0, done.output
    assert "2 waiting change(s) dead-lettered" in done.output
    assert await connection(database) is None

    subtypes = [s for s, _, _, _ in await audited(database)]
    assert subtypes == ["ehr-update", "ehr-disable", "ehr-enable", "ehr-resync", "ehr-remove"]
    assert all(c is not None and c.startswith("cli") for _, _, c, _ in await audited(database))


async def test_the_command_line_names_what_is_wrong(cli, database, program, tmp_path):
    await add_connection(database, program, tmp_path)
    for args in (("update", "nowhere", "--rate", "3"), ("disable", "nowhere"), ("remove", "nowhere")):
        done = await cli(*args)
        assert done.exit_code == 2 and "no EHR connection" in done.output, args
    done = await cli("update", "hospital", "--base-url", "ftp://x")
    assert done.exit_code == 2 and "base_url" in done.output
    done = await cli("update", "hospital")
    assert done.exit_code == 2 and "nothing to change" in done.output
    done = await cli("resync", "hospital", "--since", "soon")
    assert done.exit_code == 2 and "since" in done.output
    assert await audited(database) == []


async def test_the_outbox_rule_itself_rows_of_a_disabled_connection_are_neither_written_nor_claimed(
    ehr, world, client, database, worker
):
    """Through the connections module only (as a worker meets a connection switched off by any means)."""
    async with database.transaction() as conn:
        await connections.set_enabled(conn, "hospital", False, datetime.now(UTC))
    await consented_session(client)
    assert await worker.drain() == 0
    assert [(s, e) for _, s, e in await states(database)] == [("pending", "")] * 2
    async with database.transaction() as conn:
        await connections.set_enabled(conn, "hospital", True, datetime.now(UTC))
    assert await worker.drain() == 2
