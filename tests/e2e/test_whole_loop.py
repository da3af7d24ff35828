"""`make run` then `peerlink sandbox scenario ...`, as real processes on loopback: the gateway with its
worker and the sandbox EHR (`peerlink up`), and the scenario commands a newcomer runs."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.gateway import PEERLINK, STARTUP_SECONDS, free_port, seeded_env

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, str], Path, str]]:
    workdir = tmp_path_factory.mktemp("whole-loop")
    env = seeded_env(workdir)
    sandbox = f"http://127.0.0.1:{free_port()}"
    log = workdir / "up.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [PEERLINK, "up", "--sandbox-port", sandbox.rsplit(":", 1)[1]],
            env=env,
            cwd=workdir,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{env['PEERLINK_PORT']}"
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200 and "paired" in log.read_text():
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.3)
        yield env, workdir, sandbox
    finally:
        process.terminate()
        process.wait(timeout=30)
        assert process.returncode == 0, log.read_text()[-3000:]


def scenario(running: tuple[dict[str, str], Path, str], name: str) -> str:
    env, workdir, sandbox = running
    done = subprocess.run(
        [PEERLINK, "sandbox", "scenario", name, "--sandbox", sandbox],
        env=env,
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_referral_loop_completes_every_step(running):
    out = scenario(running, "referral-loop")
    for step in (
        "the clinic sends a referral",
        "PeerLink polls the EHR",
        "accepts it",
        "two peer sessions",
        "reach the EHR as Encounter + DocumentReference",
        "shows completed with the sessions as output",
    ):
        assert step in out
    assert out.count("      ok: Encounter/") == 2
    assert "status completed, output Encounter/" in out
    assert out.rstrip().endswith("scenario passed")
    # the top match was assigned through the API: the assignment and its reason are in the audit log
    assert "the top match is assigned through the API" in out and "(rank 1 of " in out
    workdir = running[1]
    with sqlite3.connect(workdir / "peerlink.db") as db:
        details = [json.loads(row[0]) for row in db.execute("SELECT detail FROM audit_log ORDER BY seq")]
    assigned = [d for d in details if "assignment" in d]
    assert assigned, "no assignment in the audit log"
    record = assigned[-1]
    assert record["assignment"]["rank"] == 1 and record["assignment"]["override"] is False
    assert record["reason"].startswith("top match: ")
    assert record["assignment"]["specialist_id"] in out


def test_care_team_sync(running):
    assert "scenario passed" in scenario(running, "care-team-sync")


def test_an_ehr_outage_loses_nothing(running):
    out = scenario(running, "ehr-outage")
    assert "all 3 sessions and notes delivered" in out and "'dead_lettered': 0" in out


def test_outcomes_reach_the_ehr_and_the_clinics_task(running):
    """An assessment recorded through the peer API reaches the sandbox EHR as QuestionnaireResponse +
    Observations (consent category assessments, connection pushing assessments), and the completed
    referral's Task at the EHR lists the baseline and latest scores as output."""
    out = scenario(running, "outcomes-loop")
    for step in (
        "consents to share their assessments",
        "a baseline PHQ-9, a peer session and a follow-up PHQ-9",
        "reaches the EHR as QuestionnaireResponse + Observations",
        "with the baseline and latest scores as output",
    ):
        assert step in out
    assert out.count("      ok: QuestionnaireResponse/") == 2
    assert out.count("with 11 Observations") == 2  # panel, total and nine items, each
    assert "status completed, output Observation/" in out
    assert out.rstrip().endswith("scenario passed")
