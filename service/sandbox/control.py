"""Driving a sandbox from code (scenarios, tests): its admin API over HTTP, and a sandbox started as
a real process on a free loopback port.

    with running_sandbox(tmp_path, "--personality", "epic") as sandbox:      # python -m service.sandbox
        async with httpx.AsyncClient(base_url=sandbox.root) as http:
            admin = SandboxAdmin(http, sandbox.admin_secret)
            await admin.register_client("peerlink", "system/*.cruds", jwks_url=...)
            referral = await admin.clinic_referral()
            counts = (await admin.state())["counts"]

``SandboxAdmin`` works the same over an in-process app (``httpx.ASGITransport``); or call the
``Sandbox`` object itself (``sandbox_of(app)``) without HTTP.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from .clinic import ReferralCreated, ReferralRequest
from .config import ADMIN_HEADER, ADMIN_SECRET_FILE, Knobs


class SandboxAdmin:
    """The admin API of a sandbox; ``http`` has the sandbox's root URL as its base URL."""

    def __init__(self, http: httpx.AsyncClient, secret: str) -> None:
        self._http = http
        self._headers = {ADMIN_HEADER: secret}

    async def _call(self, method: str, path: str, json: Any = None) -> Any:
        response = await self._http.request(method, path, json=json, headers=self._headers)
        response.raise_for_status()
        return response.json()

    async def register_client(
        self,
        client_id: str,
        scopes: str,
        *,
        jwks: dict[str, Any] | None = None,
        jwks_url: str | None = None,
    ) -> dict[str, Any]:
        body = {"client_id": client_id, "scopes": scopes, "jwks": jwks, "jwks_url": jwks_url}
        registered: dict[str, Any] = await self._call("POST", "/admin/clients", body)
        return registered

    async def clinic_referral(self, request: ReferralRequest | None = None) -> ReferralCreated:
        body = (request or ReferralRequest()).model_dump(exclude_none=True)
        return ReferralCreated.model_validate(await self._call("POST", "/sandbox/clinic/referral", body))

    async def state(self) -> dict[str, Any]:
        state: dict[str, Any] = await self._call("GET", "/sandbox/state")
        return state

    async def reset(self) -> dict[str, Any]:
        state: dict[str, Any] = await self._call("POST", "/sandbox/reset")
        return state

    async def set_knobs(self, **changes: Any) -> Knobs:
        return Knobs.model_validate(await self._call("PATCH", "/sandbox/knobs", changes))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def sandbox_command(port: int, keys_dir: Path, *options: str) -> list[str]:
    """The command line of a sandbox process on a loopback port (``python -m service.sandbox sandbox``)."""
    return [
        sys.executable,
        "-m",
        "service.sandbox",
        "sandbox",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--keys-dir",
        str(keys_dir),
        *options,
    ]


@dataclass(frozen=True)
class RunningSandbox:
    root: str
    """http://127.0.0.1:PORT"""
    fhir_base: str
    token_url: str
    admin_secret: str
    keys_dir: Path
    log: Path
    pid: int


@contextmanager
def running_sandbox(workdir: Path, *options: str, ready_timeout: float = 30.0) -> Iterator[RunningSandbox]:
    """``python -m service.sandbox sandbox`` on a free loopback port, with its keys and log in
    ``workdir``; ``options`` are further command-line options. Stopped (SIGTERM, by pid) on exit."""
    port = free_port()
    keys_dir = workdir / "sandbox-keys"
    log = workdir / "sandbox.log"
    command = sandbox_command(port, keys_dir, *options)
    root = f"http://127.0.0.1:{port}"
    with log.open("w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)  # noqa: S603 - our own module
    try:
        state = _wait_ready(process, root, keys_dir / ADMIN_SECRET_FILE, log, ready_timeout)
        secret = (keys_dir / ADMIN_SECRET_FILE).read_text().strip()
        urls = state["urls"]
        yield RunningSandbox(root, urls["fhir_base"], urls["token_url"], secret, keys_dir, log, process.pid)
    finally:
        stop_process(process)


def stop_process(process: subprocess.Popen[bytes], timeout: float = 15) -> None:
    """SIGTERM (a graceful stop), then SIGKILL if it has not ended within ``timeout`` seconds."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


def _wait_ready(process: subprocess.Popen[bytes], root: str, secret_file: Path, log: Path, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"the sandbox exited with {process.returncode}:\n{log.read_text()}")
        if secret_file.exists():
            headers = {ADMIN_HEADER: secret_file.read_text().strip()}
            try:
                response = httpx.get(f"{root}/sandbox/state", headers=headers, timeout=1)
                if response.status_code == 200:
                    return response.json()
            except httpx.TransportError:
                pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"the sandbox did not become ready in {timeout} s:\n{log.read_text()}")
        time.sleep(0.1)
