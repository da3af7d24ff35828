"""The soak run shared by `tests/bench/bench_soak.py` and its smoke test: real processes on loopback on a fresh
PostgreSQL database — the sandbox EHR (paired: connection ``sandbox``), one `peerlink serve`, one `peerlink
worker` — and, for the run's length, a mixed load from CONCURRENCY clients:

- the hospital's FHIR pulls as the ``sandbox-hospital`` client (the consent boundary on every request):
  Patient by MRN, Encounter?patient=, DocumentReference?patient=&category=clinical-note, a read, a
  ``_revinclude``;
- the program's peer-API reads as the demo client: participants, a participant's encounters;
- peer-API writes: finished sessions, a third of them with a note created and signed, which the worker
  delivers to the sandbox.

Every SAMPLE_SECONDS: resident memory and open file descriptors of the gateway and the worker (/proc), and
the connections open to the run's database (pg_stat_activity). At the end the outbox must empty.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from service.auth.backend_client import fetch_token, private_key_file
from service.cli.seed import HOSPITAL_MRN_SYSTEM
from service.sandbox.control import running_sandbox
from service.settings import Settings
from service.store.migrate import upgrade
from tests.e2e.gateway import PEERLINK, free_port
from tests.e2e.scale_support import _dsn, _pair, drop_database, fresh_database, process

CONCURRENCY = 6
SAMPLE_SECONDS = 5.0
PAUSE_SECONDS = 0.01
"""Each client rests this long between requests (a steady load, not a flat-out one)."""


@dataclass
class Sample:
    at: float
    rss: dict[str, int]
    """kB, per process role."""
    fds: dict[str, int]
    connections: int


@dataclass
class SoakRun:
    seconds: float
    warmup: float
    samples: list[Sample] = field(default_factory=list)
    requests: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    outbox: dict[str, int] = field(default_factory=dict)
    drained: bool = False
    logged_errors: dict[str, str] = field(default_factory=dict)

    @property
    def errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if not 200 <= status < 300) + len(
            [f for f in self.failures if f.startswith("transport")]
        )

    def after_warmup(self) -> list[Sample]:
        return [s for s in self.samples if s.at >= self.warmup]

    def growth(self, role: str) -> float:
        """Resident memory at the end over just after warm-up, minus 1 (the mean of the first and of the last
        three samples after warm-up)."""
        kept = [s.rss[role] for s in self.after_warmup() if role in s.rss]
        if len(kept) < 2:
            return 0.0
        head, tail = kept[:3], kept[-3:]
        start = sum(head) / len(head)
        return (sum(tail) / len(tail)) / start - 1 if start else 0.0


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


async def _connections(url: str) -> int:
    conn = await asyncpg.connect(_dsn(url))
    try:
        count: int = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    finally:
        await conn.close()
    return count


def _sampler(url: str, pids: dict[str, int], began: float, run: SoakRun, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            run.samples.append(
                Sample(
                    time.perf_counter() - began,
                    {role: rss_kb(pid) for role, pid in pids.items()},
                    {role: open_fds(pid) for role, pid in pids.items()},
                    asyncio.run(_connections(url)),
                )
            )
        except (OSError, asyncpg.PostgresError) as error:
            run.failures.append(f"sample: {error}")
        stop.wait(SAMPLE_SECONDS)


class Load:
    def __init__(self, base: str, demo: str, hospital: str, run: SoakRun) -> None:
        self.base = base
        self.demo = {"Authorization": f"Bearer {demo}"}
        self.hospital = {"Authorization": f"Bearer {hospital}", "Accept": "application/fhir+json"}
        self.run = run
        self.participants: list[dict[str, Any]] = []
        self.patients: list[tuple[str, str]] = []  # (Patient id, MRN)
        self.specialists: list[str] = []
        self.written = 0

    async def prepare(self, http: httpx.AsyncClient) -> None:
        self.participants = (await http.get("/peer/v1/participants", params={"limit": 100}, headers=self.demo)).json()[
            "items"
        ]
        self.specialists = [
            s["id"] for s in (await http.get("/peer/v1/specialists", headers=self.demo)).json()["items"] if s["active"]
        ]
        bundle = (await http.get("/fhir/Patient", params={"_count": 100}, headers=self.hospital)).json()
        for entry in bundle.get("entry") or []:
            patient = entry["resource"]
            mrn = next(
                (i["value"] for i in patient.get("identifier") or [] if i.get("system") == HOSPITAL_MRN_SYSTEM), ""
            )
            self.patients.append((patient["id"], mrn))

    async def _call(self, http: httpx.AsyncClient, kind: str, method: str, path: str, **kwargs: Any) -> Any:
        self.run.requests[kind] += 1
        try:
            response = await http.request(method, path, **kwargs)
        except httpx.TransportError as error:
            self.run.failures.append(f"transport {kind}: {error!r}")
            return None
        self.run.statuses[response.status_code] += 1
        if not 200 <= response.status_code < 300:
            if len(self.run.failures) < 20:
                self.run.failures.append(f"{method} {path}: {response.status_code} {response.text[:300]}")
            return None
        return response.json()

    async def one(self, http: httpx.AsyncClient, rng: random.Random) -> None:
        roll = rng.random()
        patient, mrn = rng.choice(self.patients)
        if roll < 0.5:
            choices = [
                f"/fhir/Patient?identifier={HOSPITAL_MRN_SYSTEM}|{mrn}",
                f"/fhir/Encounter?patient={patient}&date=ge{date.today() - timedelta(days=365)}",
                f"/fhir/DocumentReference?patient={patient}&category=clinical-note",
                f"/fhir/Patient/{patient}",
                f"/fhir/Encounter?patient={patient}&_revinclude=DocumentReference:encounter",
            ]
            await self._call(http, "fhir", "GET", rng.choice(choices), headers=self.hospital)
        elif roll < 0.7:
            participant = rng.choice(self.participants)["id"]
            path = rng.choice(["/peer/v1/participants?limit=20", f"/peer/v1/encounters?participant_id={participant}"])
            await self._call(http, "peer read", "GET", path, headers=self.demo)
        else:
            await self.write(http, rng)

    async def write(self, http: httpx.AsyncClient, rng: random.Random) -> None:
        self.written += 1
        start = datetime.now(UTC) - timedelta(days=1, minutes=self.written)
        session = await self._call(
            http,
            "write",
            "POST",
            "/peer/v1/encounters",
            headers=self.demo,
            json={
                "participant_id": rng.choice(self.participants)["id"],
                "specialist_id": rng.choice(self.specialists),
                "start": start.isoformat(),
                "end": (start + timedelta(minutes=40)).isoformat(),
                "modality": rng.choice(["phone", "video", "in-person"]),
                "support_categories": ["emotional"],
                "status": "finished",
            },
        )
        if session is None or rng.random() > 1 / 3:
            return
        note = await self._call(
            http,
            "write",
            "POST",
            "/peer/v1/notes",
            headers=self.demo,
            json={"encounter_id": session["id"], "author_id": session["specialist_id"], "text": "Soak check-in."},
        )
        if note is not None:
            await self._call(http, "write", "POST", f"/peer/v1/notes/{note['id']}/sign", headers=self.demo)

    async def drive(self, until: float, seed: int) -> None:
        rng = random.Random(seed)
        async with httpx.AsyncClient(base_url=self.base, timeout=60) as http:
            while time.perf_counter() < until:
                await self.one(http, rng)
                await asyncio.sleep(PAUSE_SECONDS)


async def _outbox(url: str, wait: float) -> tuple[bool, dict[str, int]]:
    conn = await asyncpg.connect(_dsn(url))
    try:
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if await conn.fetchval("SELECT count(*) FROM outbox WHERE state IN ('pending', 'sending')") == 0:
                break
            await asyncio.sleep(0.5)
        rows = await conn.fetch("SELECT state, count(*) AS n FROM outbox GROUP BY state")
    finally:
        await conn.close()
    states = {r["state"]: r["n"] for r in rows}
    return states.get("pending", 0) + states.get("sending", 0) == 0, states


def run_soak(workdir: Path, server: str, seconds: float, warmup: float) -> SoakRun:
    url = asyncio.run(fresh_database(server, "peerlink_soak"))
    try:
        return _run(workdir, url, seconds, warmup)
    finally:
        asyncio.run(drop_database(url))


def _token(env: dict[str, str], *args: str) -> str:
    command = [PEERLINK, "token", *args]
    return subprocess.run(command, env=env, check=True, capture_output=True, text=True, timeout=60).stdout.strip()


def _run(workdir: Path, url: str, seconds: float, warmup: float) -> SoakRun:
    workdir.mkdir(parents=True, exist_ok=True)
    upgrade(url)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    keys_dir = workdir / "keys"
    env = {
        **os.environ,
        "PEERLINK_DATABASE_URL": url,
        "PEERLINK_KEYS_DIR": str(keys_dir),
        "PEERLINK_LOG_LEVEL": "WARNING",
        "PEERLINK_HOST": "127.0.0.1",
        "PEERLINK_PORT": str(port),
        "PEERLINK_ACCESS_TOKEN_SECONDS": "3600",
        "PEERLINK_WORKER_IN_PROCESS": "false",
    }
    subprocess.run([PEERLINK, "seed"], env=env, check=True, capture_output=True, timeout=120)
    run = SoakRun(seconds, warmup)
    logs = {"gateway": workdir / "gateway.log", "worker": workdir / "worker.log"}
    with contextlib.ExitStack() as stack:
        sandbox = stack.enter_context(running_sandbox(workdir))
        asyncio.run(_pair(Settings(database_url=url, keys_dir=keys_dir), sandbox, url))
        pids = {"gateway": stack.enter_context(process([PEERLINK, "serve"], env, logs["gateway"], f"{base}/readyz"))}
        pids["worker"] = stack.enter_context(process([PEERLINK, "worker"], env, logs["worker"]))
        demo = _token(env)
        key = keys_dir / "sandbox-hospital-client.pem"
        hospital = asyncio.run(fetch_token(f"{base}/auth/token", "sandbox-hospital", private_key_file(key)))
        load = Load(base, demo, hospital["access_token"], run)

        async def drive() -> None:
            async with httpx.AsyncClient(base_url=base, timeout=60) as http:
                await load.prepare(http)
            until = time.perf_counter() + seconds
            await asyncio.gather(*(load.drive(until, n) for n in range(CONCURRENCY)))

        stop = threading.Event()
        sampler = threading.Thread(target=_sampler, args=(url, pids, time.perf_counter(), run, stop), daemon=True)
        sampler.start()
        try:
            asyncio.run(drive())
        finally:
            stop.set()
            sampler.join(30)
        run.drained, run.outbox = asyncio.run(_outbox(url, 120))
    for role, log in {**logs, "sandbox": sandbox.log}.items():
        text = log.read_text(errors="replace") if log.exists() else ""
        if "Traceback" in text or '"level": "error"' in text or "\nERROR" in text:
            run.logged_errors[role] = text[-2000:]
    return run
