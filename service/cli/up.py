"""`peerlink up`: the gateway and the sandbox EHR together, introduced to each other (`make run`)."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from typing import Annotated

import httpx
import typer

from service.settings import get_settings


def _wait_for_sandbox(process: subprocess.Popen[bytes], root: str, timeout: float = 30.0) -> str:
    from service.sandbox.config import ADMIN_HEADER
    from service.sandbox.pairing import SANDBOX_KEYS, admin_secret

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise typer.Exit(1)
        try:
            secret = admin_secret(SANDBOX_KEYS)
            if httpx.get(f"{root}/sandbox/state", headers={ADMIN_HEADER: secret}, timeout=1).status_code == 200:
                return secret
        except (OSError, httpx.TransportError):
            pass
        time.sleep(0.2)
    raise typer.Exit(1)


def up(
    sandbox_port: Annotated[int, typer.Option(help="Port of the sandbox EHR.")] = 9090,
    personality: Annotated[str, typer.Option(help="Sandbox personality: generic, epic or oracle.")] = "generic",
) -> None:
    """Start the sandbox EHR, pair it with the gateway (keys made on first run, kept in the keys folders),
    then serve the gateway with its outbox worker. Ctrl-C stops both."""
    import uvicorn

    from service.app import create_app
    from service.heap import freeze_heap
    from service.logs import configure_logging
    from service.sandbox.control import sandbox_command, stop_process
    from service.sandbox.pairing import CONNECTION, HOSPITAL_CLIENT, SANDBOX_KEYS, pair

    settings = get_settings().model_copy(update={"worker_in_process": True})
    configure_logging(settings.log_level, json=settings.log_json)
    root = f"http://127.0.0.1:{sandbox_port}"
    command = sandbox_command(sandbox_port, SANDBOX_KEYS, "--personality", personality)
    sandbox = subprocess.Popen(command)  # noqa: S603 - our own module
    # uvicorn shuts down gracefully on SIGTERM, then raises the signal again with the handler it found:
    # this one turns it into a normal exit, so the sandbox is stopped below
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        secret = _wait_for_sandbox(sandbox, root)
        state = httpx.get(f"{root}/sandbox/state", headers={"X-Sandbox-Admin": secret}, timeout=5).json()
        pairing = asyncio.run(pair(settings, root, secret, state["urls"]["fhir_base"]))
        base = settings.base_url
        typer.echo(
            f"\nPeerLink gateway on {base}, sandbox EHR on {root} (paired: connection '{CONNECTION}', "
            f"client '{HOSPITAL_CLIENT}')\n"
            f"  token              .venv/bin/peerlink token\n"
            f'  the peer API       curl -H "Authorization: Bearer $(.venv/bin/peerlink token)" '
            f"{base}/peer/v1/referrals\n"
            f"  the whole loop     .venv/bin/peerlink sandbox scenario referral-loop\n"
            f"  as the hospital    .venv/bin/peerlink token --client {HOSPITAL_CLIENT} --key {pairing.hospital_key}\n"
            f'  exchange metrics   curl -H "Authorization: Bearer $(.venv/bin/peerlink token)" '
            f"{base}/admin/v1/exchange/metrics\n"
            f"  API docs           {base}/docs\n"
        )
        application = create_app(settings)
        freeze_heap()
        uvicorn.run(application, host=settings.host, port=settings.port, log_config=None, access_log=False)
    finally:
        stop_process(sandbox)
