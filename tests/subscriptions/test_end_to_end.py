"""End to end over loopback: a real gateway process (its worker in process) and a real rest-hook
receiver. Handshake, heartbeat, an event for a referral's status change (its Task) with the right
numbers; the gateway killed while the event is on the wire and restarted still delivers it; and
``$events`` returns one the subscriber missed."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.e2e.gateway import PEERLINK, cli_token, seeded_env

from .conftest import subscription
from .receiver import event_numbers, parameter, running_receiver, status_of

FHIR = {"Content-Type": "application/fhir+json"}


@contextmanager
def serving(env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("a") as out:
        process = subprocess.Popen([PEERLINK, "serve"], env=env, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{env['PEERLINK_PORT']}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "gateway did not become ready"
            time.sleep(0.2)
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=20)


def _referrals(http: httpx.Client, status: str) -> list[str]:
    answer = http.get("/peer/v1/referrals", params={"status": status, "limit": 10})
    assert answer.status_code == 200, answer.text
    return [r["id"] for r in answer.json()["items"]]


def test_handshake_heartbeat_event_restart_and_events(tmp_path: Path) -> None:
    env = seeded_env(tmp_path)
    env |= {
        "PEERLINK_WORKER_IN_PROCESS": "true",
        "PEERLINK_WORKER_IDLE_SECONDS": "0.2",
        "PEERLINK_SUBSCRIPTION_LEASE_SECONDS": "2",
        "PEERLINK_SUBSCRIPTION_RETRY_BASE_SECONDS": "0.5",
    }
    base = f"http://127.0.0.1:{env['PEERLINK_PORT']}"
    log = tmp_path / "gateway.log"
    with running_receiver() as receiver:
        with serving(env, log) as first:
            headers = {"Authorization": f"Bearer {cli_token(env)}"}
            with httpx.Client(base_url=base, headers=headers, timeout=30) as http:
                body = subscription(receiver.url, heartbeat=1, filters=("Task?status=received,cancelled",))
                created = http.post("/fhir/Subscription", json=body, headers=FHIR)
                assert created.status_code == 201, created.text
                sid = created.json()["id"]
                (handshake,) = receiver.wait_for("handshake")
                assert parameter(handshake, "subscription")["reference"] == f"{base}/fhir/Subscription/{sid}"
                assert receiver.headers[0]["Authorization"] == "Bearer subscriber-secret"
                # the receiver has answered the handshake; the gateway records the answer just after
                deadline = time.monotonic() + 30
                while (status := http.get(f"/fhir/Subscription/{sid}").json()["status"]) == "requested":
                    assert time.monotonic() < deadline, "the handshake's answer was never recorded"
                    time.sleep(0.1)
                assert status == "active"
                beat = receiver.wait_for("heartbeat")[0]
                assert parameter(beat, "events-since-subscription-start") == "0"

                receiver.hold = threading.Event()  # the next notification stays on the wire
                waiting = _referrals(http, "requested")
                moved = http.post(f"/peer/v1/referrals/{waiting[0]}/receive", json={"by": "coordinator@program"})
                assert moved.status_code == 200, moved.text
                assert receiver.held.wait(30), log.read_text()
            first.send_signal(signal.SIGKILL)  # killed during delivery: the event was not acknowledged
            first.wait(timeout=10)
        receiver.drop_held = True
        receiver.hold.set()
        receiver.hold = None
        assert receiver.of_type("event-notification") == []

        with serving(env, log), httpx.Client(base_url=base, headers=headers, timeout=30) as http:
            (event,) = receiver.wait_for("event-notification")
            assert event_numbers(event) == [1]
            task = event["entry"][1]["resource"]
            assert (task["resourceType"], task["status"], task["intent"]) == ("Task", "received", "order")

            moved = http.post(
                f"/peer/v1/referrals/{waiting[0]}/cancel", json={"by": "coordinator@program", "reason": "moved away"}
            )
            assert moved.status_code == 200, moved.text
            second = receiver.wait_for("event-notification", 2)[1]
            assert event_numbers(second) == [2]
            assert second["entry"][1]["resource"]["status"] == "cancelled"
            assert parameter(second, "events-since-subscription-start") == "2"

            # a subscriber that lost event 1 asks for it
            missed = http.get(
                f"/fhir/Subscription/{sid}/$events", params={"eventsSinceNumber": "1", "eventsUntilNumber": "1"}
            )
            assert missed.status_code == 200, missed.text
            assert event_numbers(missed.json()) == [1]
            assert missed.json()["entry"][1]["resource"]["id"] == task["id"]
            status = http.get(f"/fhir/Subscription/{sid}/$status").json()
            assert parameter(status, "events-since-subscription-start") == "2"
            assert status_of(status)["parameter"][2] == {"name": "status", "valueCode": "active"}
