"""The sandbox as a real process on a free loopback port (``python -m service.sandbox sandbox``), and
``python -m service.sandbox check`` pointed at it."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx
import pytest

from service.auth.backend_client import fetch_token, load_private_key
from service.sandbox import ReferralRequest
from service.sandbox.cli import _keys_folder
from service.sandbox.control import SandboxAdmin, running_sandbox
from tests.auth_support import rsa_key
from tests.e2e.gateway import STARTUP_SECONDS
from tests.sandbox.support import pem

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    path = tmp_path_factory.mktemp("sandbox-process")
    (path / "clients.json").write_text(
        json.dumps({"clients": [{"client_id": "peerlink", "scopes": "system/*.cruds", "jwks": rsa_key().jwks}]})
    )
    (path / "peerlink.pem").write_bytes(pem(rsa_key()))
    return path


@pytest.fixture(scope="module")
def sandbox(workdir):
    with running_sandbox(workdir, "--clients", str(workdir / "clients.json"), ready_timeout=STARTUP_SECONDS) as running:
        yield running


def run_check(fhir_base: str, workdir, *extra: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "service.sandbox", "check", "--ehr", fhir_base, "--client-id", "peerlink"]
    command += ["--key", str(workdir / "peerlink.pem"), "--kid", rsa_key().kid, *extra]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


async def test_fhir_and_tokens_over_loopback(sandbox):
    assert sandbox.root.startswith("http://127.0.0.1:")
    async with httpx.AsyncClient(base_url=sandbox.root, timeout=10) as http:
        statement = (await http.get(f"{sandbox.fhir_base}/metadata")).json()
        oauth = statement["rest"][0]["security"]["extension"][0]["extension"][0]
        assert oauth["valueUri"] == sandbox.token_url
        key = load_private_key(pem(rsa_key()), rsa_key().kid)
        token = await fetch_token(sandbox.token_url, "peerlink", key)
        headers = {"Authorization": f"Bearer {token['access_token']}"}
        bundle = (await http.get(f"{sandbox.fhir_base}/Patient", params={"_count": "1"}, headers=headers)).json()
        assert bundle["total"] >= 50 and len(bundle["entry"]) == 1
        assert (await http.get(f"{sandbox.fhir_base}/Patient")).status_code == 401


async def test_admin_api_over_loopback(sandbox):
    async with httpx.AsyncClient(base_url=sandbox.root, timeout=10) as http:
        admin = SandboxAdmin(http, sandbox.admin_secret)
        created = await admin.clinic_referral(ReferralRequest(mrn="SBX100001"))
        state = await admin.state()
        assert state["counts"]["Task"] >= 1 and state["clients"] == ["peerlink"]
        assert created.task_id and created.identifier["system"] == state["well_known"]["clinic_placer_system"]
        await admin.reset()
        assert (await admin.state())["counts"]["Task"] == 0
    assert "fhir request" in sandbox.log.read_text()


def test_check_command_passes_against_the_process(sandbox, workdir):
    done = run_check(sandbox.fhir_base, workdir, "--write-test")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "FAIL" not in done.stdout
    assert f"{sandbox.fhir_base}: 15 passed, 0 failed, 0 skipped" in done.stdout


def test_check_command_fails_against_a_deficient_process(workdir, tmp_path):
    with running_sandbox(
        tmp_path, "--deficient", "--clients", str(workdir / "clients.json"), ready_timeout=STARTUP_SECONDS
    ) as deficient:
        done = run_check(deficient.fhir_base, workdir, "--json")
    assert done.returncode == 1, done.stdout + done.stderr
    report = json.loads(done.stdout)
    failed = {r["name"] for r in report["results"] if r["status"] == "FAIL"}
    assert failed == {
        "SMART configuration",
        "transaction Bundles",
        "conditional create",
        "Task: search by owner and _lastUpdated, update",
    }
    assert report["ok"] is False


def test_keys_and_admin_secret_are_made_once_and_kept(tmp_path):
    folder, secret = _keys_folder(tmp_path / "keys")
    keys = (folder / "signing-keys.json").read_bytes()
    assert _keys_folder(tmp_path / "keys") == (folder, secret)
    assert (folder / "signing-keys.json").read_bytes() == keys
    assert oct((folder / "admin-secret").stat().st_mode & 0o777) == "0o600"
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    fallback, other = _keys_folder(blocked / "keys")  # cannot be created: a temporary folder instead
    assert fallback != blocked / "keys" and (fallback / "signing-keys.json").exists() and other
