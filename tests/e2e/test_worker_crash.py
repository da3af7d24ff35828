"""Crash test on PostgreSQL: `peerlink worker` processes killed with SIGKILL at random moments, over 20
rounds, while 500 changes go to the sandbox EHR (a real process); then one clean run. The EHR must hold
every resource exactly once, and every change must be delivered. With one worker, and with two at once.
(20 rounds, not 50 as before: each round is one more kill at a random moment of the same delivery loop;
20 kills of one worker and 40 of two still land in claims, in sends and between commits, in half the time.)"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import time
import uuid
from pathlib import Path

import asyncpg
import httpx
import pytest

from service.cli.seed import seed_demo
from service.sandbox.control import running_sandbox
from service.sandbox.pairing import pair
from service.settings import Settings
from service.store import Database
from service.store.migrate import upgrade
from tests.conftest import PG_URL
from tests.e2e.gateway import PEERLINK, STARTUP_SECONDS
from tests.e2e.outbox_support import on, sessions_with_notes, states

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(not PG_URL, reason="needs PEERLINK_TEST_DATABASE_URL (PostgreSQL)")]
SESSIONS = 250  # each a session and its signed note: 500 changes
ROUNDS = 20


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


async def _seed(database: Database) -> None:
    async with database.transaction() as conn:
        assert await seed_demo(conn) is not None


async def _changes(database: Database) -> None:
    """500 changes: sessions of the seeded (consenting) participants, each with a signed note."""
    await sessions_with_notes(database, SESSIONS)


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
    on(url, _seed)
    with running_sandbox(tmp_path, ready_timeout=STARTUP_SECONDS) as sandbox:
        asyncio.run(pair(settings, sandbox.root, sandbox.admin_secret, sandbox.fhir_base))
        before = httpx.get(f"{sandbox.root}/sandbox/state", headers={"X-Sandbox-Admin": sandbox.admin_secret}).json()
        on(url, _changes)
        assert on(url, states) == {"pending": 2 * SESSIONS}
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
                found = on(url, states)
                if found.get("delivered", 0) == 2 * SESSIONS:
                    break
                time.sleep(0.5)
        finally:
            for process in survivors:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=30)
        after = httpx.get(f"{sandbox.root}/sandbox/state", headers={"X-Sandbox-Admin": sandbox.admin_secret}).json()
    assert found == {"delivered": 2 * SESSIONS}, log.read_text()[-3000:]
    added = {t: after["counts"][t] - before["counts"].get(t, 0) for t in ("Encounter", "DocumentReference")}
    assert added == {"Encounter": SESSIONS, "DocumentReference": SESSIONS}  # every one, exactly once
