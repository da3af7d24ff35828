"""Crash test on PostgreSQL: `peerlink worker` processes killed with SIGKILL at random moments, over 50
rounds, while 500 changes go to the sandbox EHR (a real process); then one clean run. The EHR must hold
every resource exactly once, and every change must be delivered. With one worker, and with two at once."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy import func, select

from service.domain import NoteFields, PeerEncounterFields
from service.records import operations
from service.records import types as rt
from service.records.programs import get_by_code
from service.sandbox.control import running_sandbox
from service.sandbox.pairing import pair
from service.seed import seed_demo
from service.settings import Settings
from service.store import Database, RecordRepository
from service.store import kinds as k
from service.store.migrate import upgrade
from service.store.tables import outbox
from tests.conftest import PG_URL
from tests.e2e.gateway import PEERLINK

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(not PG_URL, reason="needs PEERLINK_TEST_DATABASE_URL (PostgreSQL)")]
SESSIONS = 250  # each a session and its signed note: 500 changes
ROUNDS = 50


async def _fresh_database() -> str:
    assert PG_URL
    name = f"peerlink_crash_{uuid.uuid4().hex[:8]}"
    server = PG_URL.replace("postgresql+asyncpg://", "postgresql://").rsplit("/", 1)[0]
    conn = await asyncpg.connect(f"{server}/postgres")
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return f"{PG_URL.rsplit('/', 1)[0]}/{name}"


async def _drop(url: str) -> None:
    server, name = url.replace("postgresql+asyncpg://", "postgresql://").rsplit("/", 1)
    conn = await asyncpg.connect(f"{server}/postgres")
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def _on(url: str, work: Any) -> Any:
    """Run ``work(database)`` in an event loop of its own (a pool belongs to the loop it was made in)."""

    async def run() -> Any:
        database = Database(url)
        try:
            return await work(database)
        finally:
            await database.dispose()

    return asyncio.run(run())


async def _seed(database: Database) -> None:
    async with database.transaction() as conn:
        assert await seed_demo(conn) is not None


async def _changes(database: Database) -> None:
    """500 changes: sessions of the seeded (consenting) participants, each with a signed note."""
    async with database.transaction() as conn:
        program = await get_by_code(conn, "demo")
        participants = (await RecordRepository(k.PARTICIPANTS).list(conn, program.id, limit=50)).items
        specialist = (await RecordRepository(k.SPECIALISTS).list(conn, program.id, limit=1)).items[0]
        # the seed's own sessions are queued too; only what follows is counted below
        await conn.execute(outbox.delete())
    start = datetime.now(UTC) - timedelta(days=60)
    for i in range(SESSIONS):
        async with database.transaction() as conn:
            session = await operations.create(
                conn,
                program.id,
                rt.ENCOUNTERS,
                PeerEncounterFields.model_validate(
                    {
                        "participant_id": participants[i % len(participants)].id,
                        "specialist_id": specialist.id,
                        "start": start + timedelta(hours=i),
                        "end": start + timedelta(hours=i, minutes=40),
                        "modality": "phone",
                        "support_categories": ["emotional"],
                        "status": "finished",
                    }
                ),
            )
            note = await operations.create(
                conn,
                program.id,
                rt.NOTES,
                NoteFields(encounter_id=session.id, author_id=specialist.id, text=f"Check-in call number {i}."),
            )
            await operations.sign_note(conn, program.id, note.id, expected_version=None)


async def _states(database: Database) -> dict[str, int]:
    async with database.read() as conn:
        rows = await conn.execute(select(outbox.c.state, func.count()).group_by(outbox.c.state))
        return {state: count for state, count in rows}


def _worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("a") as out:
        return subprocess.Popen([PEERLINK, "worker"], env=env, stdout=out, stderr=subprocess.STDOUT)


@pytest.mark.parametrize("workers", [1, 2])
def test_killed_workers_lose_nothing_and_duplicate_nothing(tmp_path, workers):
    url = asyncio.run(_fresh_database())
    try:
        _crash_rounds(tmp_path, url, workers)
    finally:
        asyncio.run(_drop(url))


def _crash_rounds(tmp_path: Path, url: str, workers: int) -> None:
    upgrade(url)
    env = {
        **os.environ,
        "PEERLINK_DATABASE_URL": url,
        "PEERLINK_KEYS_DIR": str(tmp_path / "keys"),
        "PEERLINK_OUTBOX_LEASE_SECONDS": "1",
        "PEERLINK_WORKER_IDLE_SECONDS": "0.1",
        "PEERLINK_OUTBOX_BATCH": "25",
        "PEERLINK_LOG_LEVEL": "WARNING",
        "PEERLINK_RETRY_BASE_SECONDS": "0.05",
        "PEERLINK_RETRY_CAP_SECONDS": "0.5",
    }
    settings = Settings(database_url=url, keys_dir=tmp_path / "keys")
    rng = random.Random(20261125)
    _on(url, _seed)
    with running_sandbox(tmp_path) as sandbox:
        asyncio.run(pair(settings, sandbox.root, sandbox.admin_secret, sandbox.fhir_base))
        before = httpx.get(f"{sandbox.root}/sandbox/state", headers={"X-Sandbox-Admin": sandbox.admin_secret}).json()
        _on(url, _changes)
        assert _on(url, _states) == {"pending": 2 * SESSIONS}
        log = tmp_path / "workers.log"
        for _ in range(ROUNDS):
            running = [_worker(env, log) for _ in range(workers)]
            for process in running:
                try:
                    process.wait(timeout=rng.uniform(0.6, 2.0))
                except subprocess.TimeoutExpired:
                    process.send_signal(signal.SIGKILL)
                    process.wait(timeout=10)
        survivors = [_worker(env, log) for _ in range(workers)]
        try:
            for _ in range(240):
                states = _on(url, _states)
                if states.get("delivered", 0) == 2 * SESSIONS:
                    break
                time.sleep(0.5)
        finally:
            for process in survivors:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=30)
        after = httpx.get(f"{sandbox.root}/sandbox/state", headers={"X-Sandbox-Admin": sandbox.admin_secret}).json()
    assert states == {"delivered": 2 * SESSIONS}, log.read_text()[-3000:]
    added = {t: after["counts"][t] - before["counts"].get(t, 0) for t in ("Encounter", "DocumentReference")}
    assert added == {"Encounter": SESSIONS, "DocumentReference": SESSIONS}  # every one, exactly once
