"""The sandbox EHR (in process) loses everything PeerLink delivered (a test system that was reset);
`peerlink ehr resync` gives it back: every resource arrives again, exactly once, under the same id."""

from __future__ import annotations

import asyncio

from service.exchange.worker import Worker
from tests.exchange.sandbox_holdings import delivered, versions
from tests.exchange.support import consented_session, fast_settings


async def test_a_reset_sandbox_gets_everything_back_exactly_once_after_resync(
    sandbox, connected, client, database, settings
):
    for _ in range(3):
        await consented_session(client)
    worker = Worker(database, fast_settings(settings), transport=sandbox.transport)
    assert await worker.drain() == 6
    held = await delivered(database)
    at_ehr = sorted(held.values())
    assert {r.split("/")[0] for r in at_ehr} >= {"Patient", "Encounter", "DocumentReference"}
    assert set(versions(sandbox, at_ehr).values()) == {1}

    await sandbox.admin.reset()  # the EHR lost what PeerLink sent it
    assert set(versions(sandbox, at_ehr).values()) == {None}
    seeded = sandbox.sandbox.store.counts()
    assert await worker.drain() == 0  # PeerLink still believes it delivered everything

    from typer.testing import CliRunner

    from service.cli.exchange import ehr_app
    from service.settings import get_settings

    get_settings.cache_clear()
    env = {"PEERLINK_DATABASE_URL": settings.database_url}
    try:
        done = await asyncio.to_thread(CliRunner().invoke, ehr_app, ["resync", "hospital"], env=env)
    finally:
        get_settings.cache_clear()
    assert done.exit_code == 0, done.output
    assert f"{len(held)} delivered resource(s) forgotten, 6 change(s) queued" in done.output

    assert await worker.drain() == 6
    assert await delivered(database) == held  # the same ids at the EHR
    assert versions(sandbox, at_ehr) == dict.fromkeys(at_ehr, 1)  # every resource back, written once
    counts = sandbox.sandbox.store.counts()  # nothing twice: the seed plus ours, per type
    assert counts == {t: n + sum(r.startswith(f"{t}/") for r in at_ehr) for t, n in seeded.items()}
