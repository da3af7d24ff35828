"""An export survives the gateway's death: a real gateway process (`peerlink serve` on loopback, its
export loop inside) is killed with SIGKILL while it writes a large export; a new process on the same
database and folder takes the job over once the lease ran out, starts it over and completes it, with
every resource exactly once."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import httpx
import orjson
import pytest
from sqlalchemy import create_engine, func, select

from service.store.tables import bulk_exports, fhir_resources
from tests.bench.bench_export import generate
from tests.e2e.gateway import PEERLINK, STARTUP_SECONDS, cli_token, seeded_env

pytestmark = pytest.mark.e2e  # a real gateway process, killed and restarted (and one of the longest tests)

GENERATED = 60_000


def start(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("a") as out:
        process = subprocess.Popen([PEERLINK, "serve"], env=env, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{env['PEERLINK_PORT']}"
    deadline = time.monotonic() + STARTUP_SECONDS
    while True:
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        assert process.poll() is None, log.read_text()
        assert time.monotonic() < deadline, "gateway did not become ready"
        time.sleep(0.1)


def test_an_export_interrupted_by_a_kill_completes_after_a_restart(tmp_path):
    env = seeded_env(tmp_path)
    env |= {
        "PEERLINK_EXPORT_DIR": str(tmp_path / "exports"),
        "PEERLINK_EXPORT_LEASE_SECONDS": "2",
        "PEERLINK_EXPORT_CHUNK_ROWS": "200",
        "PEERLINK_WORKER_IDLE_SECONDS": "0.2",
    }
    sync_url = f"sqlite:///{tmp_path}/peerlink.db"
    generate(sync_url, GENERATED)
    engine = create_engine(sync_url)
    with engine.connect() as conn:
        rows = conn.execute(
            select(fhir_resources.c.resource_type, func.count()).group_by(fhir_resources.c.resource_type)
        )
        stored = {str(row[0]): int(row[1]) for row in rows}
    base = f"http://127.0.0.1:{env['PEERLINK_PORT']}"
    log = tmp_path / "gateway.log"
    first = start(env, log)
    try:
        headers = {"Authorization": f"Bearer {cli_token(env)}"}
        kicked = httpx.get(f"{base}/fhir/$export", headers={**headers, "Prefer": "respond-async"}, timeout=10)
        assert kicked.status_code == 202, kicked.text
        status = kicked.headers["content-location"]
        deadline = time.monotonic() + 30
        while True:  # kill it once it is writing
            progress = httpx.get(status, headers=headers, timeout=10)
            assert progress.status_code == 202, "the export finished before it could be interrupted"
            if progress.headers["x-progress"].startswith("running"):
                break
            assert time.monotonic() < deadline
            time.sleep(0.02)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=15)
    with engine.connect() as conn:
        job = conn.execute(select(bulk_exports)).one()
    assert job.state == "running" and job.attempts == 1  # killed mid-run: no one gave it back
    second = start(env, log)
    try:
        deadline = time.monotonic() + 90
        while (answer := httpx.get(status, headers=headers, timeout=10)).status_code == 202:
            assert time.monotonic() < deadline, "the export did not complete after the restart"
            time.sleep(float(answer.headers["retry-after"]) / 4)
        assert answer.status_code == 200, answer.text
        manifest = answer.json()
        counts = {item["type"]: item["count"] for item in manifest["output"]}
        assert counts == stored
        for item in manifest["output"]:
            if item["type"] not in ("Patient", "Encounter"):
                continue
            lines = httpx.get(item["url"], headers=headers, timeout=30).content.splitlines()
            ids = [orjson.loads(line)["id"] for line in lines]
            assert len(ids) == len(set(ids)) == stored[item["type"]]
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=15)
    with engine.connect() as conn:
        job = conn.execute(select(bulk_exports)).one()
    engine.dispose()
    assert job.state == "done" and job.attempts == 2
