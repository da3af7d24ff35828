"""The gateway as a real process on loopback: migrate, seed, serve on a free port, stop with SIGTERM."""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
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


PER_GATEWAY = ("PEERLINK_DATABASE_URL", "PEERLINK_LOG_LEVEL", "PEERLINK_HOST", "PEERLINK_PORT", "PEERLINK_KEYS_DIR")
"""The settings each gateway has of its own; the others (the program, the instruments) shape what
`peerlink seed` writes, and key the seeded copies below."""
_seeded: dict[tuple[tuple[str, str], ...], Path] = {}
"""Folders of `peerlink migrate` + `peerlink seed` output (the SQLite file and the keys folder with the
demo client's key), one per set of other settings, made once per test process: seeding costs seconds
of CPU, copying milliseconds."""


def seeded_env(workdir: Path, log_level: str = "WARNING") -> dict[str, str]:
    """Environment of a gateway on a fresh SQLite file in ``workdir``, migrated and seeded (a copy of
    what the real commands wrote once for these settings in this process; the gateway's own signing
    keys are made by `peerlink serve`, in its own keys folder)."""
    env = {
        **os.environ,
        "PEERLINK_DATABASE_URL": f"sqlite+aiosqlite:///{workdir}/peerlink.db",
        "PEERLINK_LOG_LEVEL": log_level,
        "PEERLINK_HOST": "127.0.0.1",
        "PEERLINK_PORT": str(free_port()),
        "PEERLINK_KEYS_DIR": str(workdir / "keys"),
    }
    key = tuple(sorted((k, v) for k, v in env.items() if k.startswith("PEERLINK_") and k not in PER_GATEWAY))
    seeded = _seeded.get(key)
    if seeded is None:
        seeded = Path(tempfile.mkdtemp(prefix="peerlink-seeded-"))
        atexit.register(shutil.rmtree, seeded, ignore_errors=True)
        seeding = {
            **env,
            "PEERLINK_DATABASE_URL": f"sqlite+aiosqlite:///{seeded}/peerlink.db",
            "PEERLINK_KEYS_DIR": str(seeded / "keys"),
        }
        for step in ("migrate", "seed"):
            subprocess.run([PEERLINK, step], env=seeding, check=True, capture_output=True, timeout=120)
        _seeded[key] = seeded
    for name in os.listdir(seeded):  # the database (with any journal) and the keys folder
        if (seeded / name).is_dir():
            shutil.copytree(seeded / name, workdir / name, dirs_exist_ok=True)
        else:
            shutil.copy2(seeded / name, workdir / name)
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
