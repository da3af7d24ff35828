"""Graceful shutdown: SIGTERM to `peerlink worker` while deliveries are in flight (the EHR answers
slowly) -- it finishes what it is sending, gives back what it holds, exits 0; nothing is lost."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from service.sandbox.control import running_sandbox
from service.sandbox.pairing import pair
from service.settings import Settings
from service.store import Database
from tests.e2e.gateway import PEERLINK, STARTUP_SECONDS, seeded_env
from tests.e2e.outbox_support import on, sessions_with_notes, states

pytestmark = pytest.mark.e2e
SESSIONS = 30


async def _sessions(database: Database) -> None:
    await sessions_with_notes(database, SESSIONS)


def test_sigterm_mid_delivery_loses_nothing(tmp_path: Path):
    env = {**seeded_env(tmp_path), "PEERLINK_WORKER_IDLE_SECONDS": "0.1", "PEERLINK_OUTBOX_BATCH": "4"}
    url = env["PEERLINK_DATABASE_URL"]
    settings = Settings(database_url=url, keys_dir=Path(env["PEERLINK_KEYS_DIR"]))
    with running_sandbox(tmp_path, "--latency-ms", "300", ready_timeout=STARTUP_SECONDS) as sandbox:
        asyncio.run(pair(settings, sandbox.root, sandbox.admin_secret, sandbox.fhir_base))
        headers = {"X-Sandbox-Admin": sandbox.admin_secret}
        before = httpx.get(f"{sandbox.root}/sandbox/state", headers=headers).json()["counts"]
        on(url, _sessions)
        log = (tmp_path / "worker.log").open("w")
        worker = subprocess.Popen([PEERLINK, "worker"], env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + STARTUP_SECONDS  # the worker starts, then sends
        while on(url, states).get("sending", 0) == 0:  # wait until deliveries are in flight
            assert time.monotonic() < deadline and worker.poll() is None
            time.sleep(0.05)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0
        held = on(url, states)
        assert held.get("sending", 0) == 0  # finished or given back, nothing left leased
        assert held.get("delivered", 0) < 2 * SESSIONS  # it stopped before the end
        done = subprocess.run([PEERLINK, "worker", "--once"], env=env, capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, done.stdout + done.stderr
        after = httpx.get(f"{sandbox.root}/sandbox/state", headers=headers).json()["counts"]
    assert on(url, states) == {"delivered": 2 * SESSIONS}
    assert after["Encounter"] - before["Encounter"] == SESSIONS
    assert after["DocumentReference"] - before.get("DocumentReference", 0) == SESSIONS
