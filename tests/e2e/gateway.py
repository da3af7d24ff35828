"""The gateway as a real process on loopback: migrate, seed, serve on a free port, stop with SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import httpx

PEERLINK = str(Path(sys.executable).parent / "peerlink")
STARTUP_SECONDS = 120.0
"""How long a process started by a test may take to become ready: imports alone take seconds, and many
more on a loaded machine (parallel test workers, CI). Only a process that never gets ready waits so long."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def seeded_env(workdir: Path, log_level: str = "WARNING") -> dict[str, str]:
    """Environment of a gateway on a fresh SQLite file in ``workdir``, migrated and seeded."""
    env = {
        **os.environ,
        "PEERLINK_DATABASE_URL": f"sqlite+aiosqlite:///{workdir}/peerlink.db",
        "PEERLINK_LOG_LEVEL": log_level,
        "PEERLINK_HOST": "127.0.0.1",
        "PEERLINK_PORT": str(free_port()),
        "PEERLINK_KEYS_DIR": str(workdir / "keys"),
    }
    for step in ("migrate", "seed"):
        subprocess.run([PEERLINK, step], env=env, check=True, capture_output=True, timeout=120)
    return env


def cli_token(env: dict[str, str], scope: str | None = None) -> str:
    """`peerlink token`: the seeded demo client's access token, from the running gateway's token endpoint."""
    command = [PEERLINK, "token", *(["--scope", scope] if scope else [])]
    done = subprocess.run(command, env=env, check=True, capture_output=True, text=True, timeout=60)
    return done.stdout.strip()


class Gateway(NamedTuple):
    base: str
    """http://127.0.0.1:PORT"""
    log: Path
    env: dict[str, str]

    def headers(self, scope: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {cli_token(self.env, scope)}"}


@contextmanager
def running_gateway(workdir: Path, log_level: str = "WARNING") -> Iterator[Gateway]:
    """Yields the running gateway: base URL, log file, environment (for `peerlink token`)."""
    env = seeded_env(workdir, log_level)
    log = workdir / "gateway.log"
    with log.open("w") as out:
        process = subprocess.Popen([PEERLINK, "serve"], env=env, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{env['PEERLINK_PORT']}"
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "gateway did not become ready"
            time.sleep(0.2)
        yield Gateway(base, log, env)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=15)
