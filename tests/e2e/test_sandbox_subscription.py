"""The referral loop both ways, as real processes on loopback (`peerlink up`: the gateway with its
worker and the sandbox EHR): the clinic polls its Task at the EHR (``--via poll``), or subscribes at
PeerLink's FHIR API to the Gravity Task topic and learns by rest-hook notification that the referral
completed (``--via subscription``), with event numbers 1..n and no polling."""

from __future__ import annotations

import subprocess
from typing import Any

import httpx
import pytest

from service.sandbox.config import ADMIN_HEADER
from service.sandbox.pairing import SANDBOX_KEYS, admin_secret
from tests.e2e.gateway import PEERLINK
from tests.e2e.test_whole_loop import running  # noqa: F401 - the module-scoped `peerlink up`

pytestmark = pytest.mark.e2e


def loop(running: Any, via: str) -> str:  # noqa: F811
    env, workdir, sandbox = running
    done = subprocess.run(
        [PEERLINK, "sandbox", "scenario", "referral-loop", "--sandbox", sandbox, "--via", via],
        env=env,
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.rstrip().endswith("scenario passed")
    return done.stdout


def received(running: Any) -> dict[str, Any]:  # noqa: F811
    _, workdir, sandbox = running
    secret = admin_secret(workdir / SANDBOX_KEYS)
    answer = httpx.get(f"{sandbox}/sandbox/subscriber", headers={ADMIN_HEADER: secret}, timeout=10)
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


def test_the_referral_loop_by_polling_and_by_subscription(running):  # noqa: F811
    polled = loop(running, "poll")
    assert "the clinic's Task at the EHR shows completed with the sessions as output" in polled
    assert "subscribes" not in polled
    assert received(running)["notifications"] == []  # polling subscribes to nothing

    out = loop(running, "subscription")
    for step in (
        "the sandbox hospital (sandbox-hospital) subscribes at PeerLink to the Gravity Task topic",
        "the handshake reached http://127.0.0.1:",
        "PeerLink polls the EHR",
        "reach the EHR as Encounter + DocumentReference",
        "the clinic learns by notification that PeerLink's Task completed (no polling)",
        "status completed; events 1..",
        "a heartbeat follows while nothing moves (every 5 s)",
    ):
        assert step in out, out
    assert "the clinic's Task at the EHR shows completed" not in out

    got = received(running)
    kinds = [n["type"] for n in got["notifications"]]
    assert kinds[0] == "handshake" and "event-notification" in kinds
    assert kinds[-1] == "heartbeat"
    numbers = got["events"]
    assert sorted(set(numbers)) == list(range(1, max(numbers) + 1))
    # the Task moved through several statuses (accepted, in progress, completed): one event each at least
    assert max(numbers) >= 2
    events = [n for n in got["notifications"] if n["type"] == "event-notification"]
    assert all(n["focus"] and all(f.split("/")[-2] == "Task" for f in n["focus"]) for n in events)
    assert all(n["subscription"] == events[0]["subscription"] for n in got["notifications"])
    assert [task["status"] for task in got["tasks"].values()] == ["completed"]
    # the last event-notification counts every event since the subscription started
    assert events[-1]["events_since_subscription_start"] == str(max(numbers))
    assert got["notifications"][-1]["events_since_subscription_start"] == str(max(numbers))


def test_the_rest_hook_refuses_a_caller_without_its_header(running):  # noqa: F811
    sandbox = running[2]
    bundle = {"resourceType": "Bundle", "type": "history", "entry": []}
    assert httpx.post(f"{sandbox}/sandbox/notifications", json=bundle, timeout=10).status_code == 401
    wrong = {"Authorization": "Bearer not-the-secret"}
    assert httpx.post(f"{sandbox}/sandbox/notifications", json=bundle, headers=wrong, timeout=10).status_code == 401
    assert httpx.get(f"{sandbox}/sandbox/subscriber", timeout=10).status_code in (401, 403)
    # with the header of a fresh hook: a Bundle that is no notification is refused, a handshake recorded
    admin = {ADMIN_HEADER: admin_secret(running[1] / SANDBOX_KEYS)}
    hook = httpx.post(f"{sandbox}/sandbox/subscriber", headers=admin, timeout=10).json()
    assert hook["endpoint"] == f"{sandbox}/sandbox/notifications"
    name, value = hook["header"].split(": ", 1)
    answer = httpx.post(hook["endpoint"], json=bundle, headers={name: value}, timeout=10)
    assert answer.status_code == 400 and answer.json()["resourceType"] == "OperationOutcome"
    status = {"resourceType": "Parameters", "parameter": [{"name": "type", "valueCode": "handshake"}]}
    handshake = {**bundle, "entry": [{"resource": status}]}
    assert httpx.post(hook["endpoint"], json=handshake, headers={name: value}, timeout=10).status_code == 200
    assert [n["type"] for n in received(running)["notifications"]] == ["handshake"]
