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

import httpx

PEERLINK = str(Path(sys.executable).parent / "peerlink")


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
    }
    for step in ("migrate", "seed"):
        subprocess.run([PEERLINK, step], env=env, check=True, capture_output=True, timeout=120)
    return env


@contextmanager
def running_gateway(workdir: Path, log_level: str = "WARNING") -> Iterator[tuple[str, Path]]:
    """Yields the base URL (http://127.0.0.1:PORT) and the path of the gateway's log."""
    env = seeded_env(workdir, log_level)
    log = workdir / "gateway.log"
    with log.open("w") as out:
        process = subprocess.Popen([PEERLINK, "serve"], env=env, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{env['PEERLINK_PORT']}"
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
