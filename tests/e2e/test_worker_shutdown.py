"""Graceful shutdown: SIGTERM to `peerlink worker` while deliveries are in flight (the EHR answers
slowly) -- it finishes what it is sending, gives back what it holds, exits 0; nothing is lost."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from service.domain import NoteFields, PeerEncounterFields
from service.records import operations
from service.records import types as rt
from service.records.programs import get_by_code
from service.sandbox.control import running_sandbox
from service.sandbox.pairing import pair
from service.settings import Settings
from service.store import Database, RecordRepository
from service.store import kinds as k
from service.store.tables import outbox
from tests.e2e.gateway import PEERLINK, seeded_env

pytestmark = pytest.mark.e2e
SESSIONS = 30


def _on(url: str, work: Any) -> Any:
    async def run() -> Any:
        database = Database(url)
        try:
            return await work(database)
        finally:
            await database.dispose()

    return asyncio.run(run())


async def _sessions(database: Database) -> None:
    async with database.transaction() as conn:
        program = await get_by_code(conn, "demo")
        participants = (await RecordRepository(k.PARTICIPANTS).list(conn, program.id, limit=50)).items
        specialist = (await RecordRepository(k.SPECIALISTS).list(conn, program.id, limit=1)).items[0]
        await conn.execute(outbox.delete())  # only what follows is counted
        start = datetime.now(UTC) - timedelta(days=30)
        for i in range(SESSIONS):
            session = await operations.create(
                conn,
                program.id,
                rt.ENCOUNTERS,
                PeerEncounterFields.model_validate(
                    {
                        "participant_id": participants[i % len(participants)].id,
                        "specialist_id": specialist.id,
                        "start": start + timedelta(hours=i),
                        "end": start + timedelta(hours=i, minutes=30),
                        "modality": "video",
                        "support_categories": ["informational"],
                        "status": "finished",
                    }
                ),
            )
            note = await operations.create(
                conn, program.id, rt.NOTES, NoteFields(encounter_id=session.id, author_id=specialist.id, text="ok")
            )
            await operations.sign_note(conn, program.id, note.id, expected_version=None)


async def _states(database: Database) -> dict[str, int]:
    async with database.read() as conn:
        rows = await conn.execute(select(outbox.c.state, func.count()).group_by(outbox.c.state))
        return {state: count for state, count in rows}


def test_sigterm_mid_delivery_loses_nothing(tmp_path: Path):
    env = {**seeded_env(tmp_path), "PEERLINK_WORKER_IDLE_SECONDS": "0.1", "PEERLINK_OUTBOX_BATCH": "4"}
    url = env["PEERLINK_DATABASE_URL"]
    settings = Settings(database_url=url, keys_dir=Path(env["PEERLINK_KEYS_DIR"]))
    with running_sandbox(tmp_path, "--latency-ms", "300") as sandbox:
        asyncio.run(pair(settings, sandbox.root, sandbox.admin_secret, sandbox.fhir_base))
        headers = {"X-Sandbox-Admin": sandbox.admin_secret}
        before = httpx.get(f"{sandbox.root}/sandbox/state", headers=headers).json()["counts"]
        _on(url, _sessions)
        log = (tmp_path / "worker.log").open("w")
        worker = subprocess.Popen([PEERLINK, "worker"], env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while _on(url, _states).get("sending", 0) == 0:  # wait until deliveries are in flight
            assert time.monotonic() < deadline and worker.poll() is None
            time.sleep(0.05)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0
        held = _on(url, _states)
        assert held.get("sending", 0) == 0  # finished or given back, nothing left leased
        assert held.get("delivered", 0) < 2 * SESSIONS  # it stopped before the end
        done = subprocess.run([PEERLINK, "worker", "--once"], env=env, capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, done.stdout + done.stderr
        after = httpx.get(f"{sandbox.root}/sandbox/state", headers=headers).json()["counts"]
    assert _on(url, _states) == {"delivered": 2 * SESSIONS}
    assert after["Encounter"] - before["Encounter"] == SESSIONS
    assert after["DocumentReference"] - before.get("DocumentReference", 0) == SESSIONS
