"""`make run`'s steps as real processes: migrate, seed, serve on loopback, then HTTP against it."""

import time

import httpx
import pytest

from service.cli.seed import _FAMILY, _GIVEN
from tests.e2e.gateway import running_gateway

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    with running_gateway(tmp_path_factory.mktemp("gateway"), log_level="DEBUG") as running:
        yield running


@pytest.fixture(scope="module")
def http(gateway):
    with httpx.Client(base_url=gateway.base, headers=gateway.headers()) as client:
        yield client


def test_seeded_gateway_serves_the_peer_api(gateway, http):
    base = ""
    assert httpx.get(f"{gateway.base}/peer/v1/participants").status_code == 401  # no token, no data
    participants = http.get(f"{base}/peer/v1/participants").json()["items"]
    assert len(participants) == 12
    assert len(http.get(f"{base}/peer/v1/specialists").json()["items"]) == 3
    statuses = {r["status"] for r in http.get(f"{base}/peer/v1/referrals").json()["items"]}
    assert statuses == {"requested", "accepted", "in-progress", "completed"}
    encounters = http.get(f"{base}/peer/v1/encounters", params={"limit": 500}).json()["items"]
    assert len(encounters) == 24 and all(e["billable_units"] >= 2 for e in encounters)
    notes = http.get(f"{base}/peer/v1/notes", params={"status": "final", "limit": 500}).json()["items"]
    assert len(notes) == 24
    assert len(http.get(f"{base}/peer/v1/care-team-members", params={"limit": 500}).json()["items"]) == 24
    assert "/peer/v1/participants" in http.get(f"{base}/openapi.json").json()["paths"]


def test_logs_carry_request_ids_but_no_phi(gateway, http):
    base, log = "", gateway.log
    participant = http.get(f"{base}/peer/v1/participants", params={"limit": 1}).json()["items"][0]
    http.get(f"{base}/peer/v1/participants/{participant['id']}")
    http.post(f"{base}/peer/v1/participants", json={"name": {"family": "Zebulon-Quartz"}, "birth_date": "3000-01-01"})
    http.get(f"{base}/peer/v1/participants", params={"birth_date": participant["birth_date"]})
    time.sleep(0.3)
    text = log.read_text()
    assert '"request_id"' in text
    forbidden = [*_FAMILY, *_GIVEN, "Zebulon-Quartz", participant["birth_date"], "SBX1000", "Intervention:"]
    leaked = [word for word in forbidden if word in text]
    assert leaked == []
