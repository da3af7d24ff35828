"""`make run`'s steps as real processes: migrate, seed, serve on loopback, then HTTP against it."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from service.seed import _FAMILY, _GIVEN

pytestmark = pytest.mark.e2e
PEERLINK = str(Path(sys.executable).parent / "peerlink")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("gateway")
    port = _free_port()
    env = {
        **os.environ,
        "PEERLINK_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/peerlink.db",
        "PEERLINK_LOG_LEVEL": "DEBUG",
        "PEERLINK_PORT": str(port),
    }
    for step in ("migrate", "seed"):
        subprocess.run([PEERLINK, step], env=env, check=True, capture_output=True, timeout=120)
    log = tmp_path / "gateway.log"
    with log.open("w") as out:
        process = subprocess.Popen([PEERLINK, "serve"], env=env, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "gateway did not become ready"
            time.sleep(0.2)
        yield base, log
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=15)


def test_seeded_gateway_serves_the_peer_api(gateway):
    base, _ = gateway
    participants = httpx.get(f"{base}/peer/v1/participants").json()["items"]
    assert len(participants) == 12
    assert len(httpx.get(f"{base}/peer/v1/specialists").json()["items"]) == 3
    statuses = {r["status"] for r in httpx.get(f"{base}/peer/v1/referrals").json()["items"]}
    assert statuses == {"requested", "accepted", "in-progress", "completed"}
    encounters = httpx.get(f"{base}/peer/v1/encounters", params={"limit": 500}).json()["items"]
    assert len(encounters) == 24 and all(e["billable_units"] >= 2 for e in encounters)
    notes = httpx.get(f"{base}/peer/v1/notes", params={"status": "final", "limit": 500}).json()["items"]
    assert len(notes) == 24
    assert len(httpx.get(f"{base}/peer/v1/care-team-members", params={"limit": 500}).json()["items"]) == 24
    assert "/peer/v1/participants" in httpx.get(f"{base}/openapi.json").json()["paths"]


def test_logs_carry_request_ids_but_no_phi(gateway):
    base, log = gateway
    participant = httpx.get(f"{base}/peer/v1/participants", params={"limit": 1}).json()["items"][0]
    httpx.get(f"{base}/peer/v1/participants/{participant['id']}")
    httpx.post(f"{base}/peer/v1/participants", json={"name": {"family": "Zebulon-Quartz"}, "birth_date": "3000-01-01"})
    httpx.get(f"{base}/peer/v1/participants", params={"birth_date": participant["birth_date"]})
    time.sleep(0.3)
    text = log.read_text()
    assert '"request_id"' in text
    forbidden = [*_FAMILY, *_GIVEN, "Zebulon-Quartz", participant["birth_date"], "SBX1000", "Intervention:"]
    leaked = [word for word in forbidden if word in text]
    assert leaked == []
