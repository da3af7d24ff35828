"""The scale run shared by `tests/e2e/test_scale.py` and `tests/bench/bench_scale.py`: real processes on
loopback, on a fresh PostgreSQL database.

- the sandbox EHR (`python -m service.sandbox`), paired with the gateway (connection ``sandbox``);
- GATEWAYS `peerlink serve` processes sharing the database, the keys folder and one public URL;
- ``workers`` `peerlink worker` processes, started before the load, so deliveries run while it lasts;
- the load: peer-API writes, CONCURRENCY requests in flight, each request to the next gateway in turn:
  SESSIONS_WITH_NOTES finished sessions each with a note created and signed (3 writes each) and
  SESSIONS_ALONE more finished sessions (1 write each): 2,000 writes, 1,500 changes for the EHR.

Before the load the demo program gets more consenting participants, through the peer API (neither
counted nor timed): a participant's changes reach an EHR in order, one at a time, so with only the 12
seeded participants at most 12 changes could be in flight, whatever the number of workers.

Two settings differ from the defaults, so that what is measured is the delivery itself: the connection's
request budget (``rate_per_second``: 20 by default, and per worker process) is lifted, and a worker that
finds nothing to claim rests 0.1 s instead of 1 s.

Measured: writes/s (the writes over the time from the first sent to the last answered) and deliveries/s
(the load's changes over the time from the first write sent to the last change's ``finished_at`` in the
outbox: until the outbox is empty). While the workers keep up, deliveries/s follows writes/s. What the
workers could do beyond shows in the CPU time each kind of process used, and in two optional phases after
the load, each delivered by the workers flat out (the outbox is held locked until they have started, so
their start-up is not timed):
- ``backlog``: that many sessions with signed notes written while no worker runs;
- ``redeliver``: every change delivered so far queued again as if the EHR had lost it all (the outbox rows
  back to pending, the gateway's record of what the EHR holds emptied): the same deliveries once more,
  without the time of writing them. The EHR then holds every resource at version 2 (benchmark only).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import signal
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from service.auth.backend_client import fetch_token, private_key_file
from service.cli.seed import SANDBOX_HOSPITAL
from service.sandbox.control import RunningSandbox, running_sandbox
from service.sandbox.pairing import pair
from service.settings import Settings
from service.store import Database
from service.store.migrate import upgrade
from service.store.tables import ehr_connections
from tests.e2e.gateway import PEERLINK, STARTUP_SECONDS, free_port

GATEWAYS = 2
CONCURRENCY = 16
SESSIONS_WITH_NOTES = 500  # 3 writes each: the session, its note, the signature
SESSIONS_ALONE = 500  # 1 write each
WRITES = 3 * SESSIONS_WITH_NOTES + SESSIONS_ALONE
PARTICIPANTS = 100  # consenting participants in all (the seed's 12 and those made before the load)
DRAIN_TIMEOUT_SECONDS = 120.0
ADMIN_HEADER = "X-Sandbox-Admin"


# --- databases --------------------------------------------------------------------------------------------
def _dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


async def fresh_database(server_url: str, prefix: str = "peerlink_scale") -> str:
    """A new, empty database on the server of ``server_url`` (any database URL of that server)."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(f"{_dsn(server_url).rsplit('/', 1)[0]}/postgres")
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return f"{server_url.rsplit('/', 1)[0]}/{name}"


async def drop_database(url: str) -> None:
    server, name = _dsn(url).rsplit("/", 1)
    conn = await asyncpg.connect(f"{server}/postgres")
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def postgres_server_url() -> str | None:
    """The PostgreSQL server to make databases on: PEERLINK_BENCH_DATABASE_URL, else PEERLINK_TEST_DATABASE_URL."""
    for variable in ("PEERLINK_BENCH_DATABASE_URL", "PEERLINK_TEST_DATABASE_URL"):
        url = os.environ.get(variable, "")
        if url.startswith(("postgresql://", "postgresql+asyncpg://")):
            return url.replace("postgresql://", "postgresql+asyncpg://", 1)
    return None


@contextlib.contextmanager
def outbox_locked(url: str) -> Iterator[list[datetime]]:
    """The outbox table locked (ACCESS EXCLUSIVE, from a thread of its own) until the block ends: workers
    started meanwhile wait at their first claim. Yields a list that then holds the moment of release."""
    acquired, release = threading.Event(), threading.Event()
    released: list[datetime] = []

    async def hold() -> None:
        conn = await asyncpg.connect(_dsn(url))
        try:
            async with conn.transaction():
                await conn.execute("LOCK TABLE outbox IN ACCESS EXCLUSIVE MODE")
                acquired.set()
                await asyncio.to_thread(release.wait)
                released.append(datetime.now(UTC))
        finally:
            await conn.close()

    thread = threading.Thread(target=asyncio.run, args=(hold(),), daemon=True)
    thread.start()
    try:
        if not acquired.wait(30):
            raise RuntimeError("could not lock the outbox")
        yield released
    finally:
        release.set()
        thread.join(30)


# --- processes --------------------------------------------------------------------------------------------
@contextlib.contextmanager
def process(command: list[str], env: dict[str, str], log: Path, ready_url: str | None = None) -> Iterator[int]:
    """A process of ours: started, optionally waited for (``ready_url`` answers 200), stopped with SIGTERM
    (SIGKILL if it does not stop in 20 s), by its pid. Yields the pid."""
    with log.open("a") as out:
        child = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while ready_url is not None:
            try:
                if httpx.get(ready_url, timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if child.poll() is not None:
                raise RuntimeError(f"{command[1:]} exited with {child.returncode}: {log.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{command[1:]} not ready: {log.read_text()[-3000:]}")
            time.sleep(0.1)
        yield child.pid
    finally:
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(timeout=20)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(timeout=10)


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process of ours has used so far; 0 where /proc is not there."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU time the whole machine has used (all CPUs, every process), from /proc/stat; 0 without it."""
    try:
        first = Path("/proc/stat").read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return 0.0
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in first[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def settle(pids: list[int], timeout: float = 30.0) -> None:
    """Until the processes idle (started up: under 0.05 s of CPU each over 0.3 s)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        before = [cpu_seconds(pid) for pid in pids]
        time.sleep(0.3)
        if all(cpu_seconds(pid) - used < 0.05 for pid, used in zip(pids, before, strict=True)):
            return


# --- the result ---------------------------------------------------------------------------------------------
@dataclass
class Writes:
    """One batch of peer-API writes: what was answered, how fast, and the records made."""

    count: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    """The first few non-2xx answers: path, status, body (synthetic data only)."""
    latencies: list[float] = field(default_factory=list)
    seconds: float = 0.0
    """From the first write sent to the last answered."""
    sessions: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    """Ids of the sessions and of the signed notes written."""

    @property
    def changes(self) -> list[str]:
        """Record ids of the changes the EHR should get."""
        return self.sessions + self.notes

    @property
    def per_second(self) -> float:
        return self.count / self.seconds if self.seconds else 0.0

    def latency_ms(self, quantile: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(len(ordered) * quantile))] * 1000 if ordered else 0.0


@dataclass
class AuditCheck:
    how: str
    """"peerlink audit verify", or the in-process walk when the command is not there."""
    ok: bool
    output: str


@dataclass
class ScaleRun:
    workers: int
    load: Writes = field(default_factory=Writes)
    deliver_seconds: float = 0.0
    """From the first write of the load sent to the last of its changes delivered."""
    drained: bool = False
    cpu: dict[str, float] = field(default_factory=dict)
    """CPU seconds used from the first write until the outbox was empty, per kind of process: gateways,
    workers, sandbox, load (this process), postgres (the backends of this database), machine (every
    process of the machine, anything else running on it included)."""
    window_seconds: float = 0.0
    """Wall time of that window."""
    backlog: Writes | None = None
    backlog_seconds: float = 0.0
    """From the outbox's release (the workers started, the backlog waiting) to its last change delivered."""
    backlog_drained: bool = False
    redelivered: int = 0
    redeliver_seconds: float = 0.0
    """From the outbox's release to the last change delivered again."""
    redeliver_drained: bool = False
    outbox_before: dict[tuple[str, str], int] = field(default_factory=dict)
    outbox_after: dict[tuple[str, str], int] = field(default_factory=dict)
    """(kind, state) -> rows, before the load and at the end."""
    rows: dict[str, int] = field(default_factory=dict)
    """state -> outbox rows of the records written (load and backlog), at the end."""
    sandbox_added: dict[str, int] = field(default_factory=dict)
    versions: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    """FHIR type -> our record id -> versionIds of the sandbox resources carrying it."""
    audit: AuditCheck | None = None
    logs: dict[str, str] = field(default_factory=dict)
    """Tails of the process logs with a traceback or an error in them."""
    ehr_statuses: Counter[int] = field(default_factory=Counter)
    """HTTP status -> FHIR requests the sandbox answered with it (from its log; 0: unreadable line)."""

    @property
    def sessions(self) -> list[str]:
        return self.load.sessions + (self.backlog.sessions if self.backlog else [])

    @property
    def notes(self) -> list[str]:
        return self.load.notes + (self.backlog.notes if self.backlog else [])

    @property
    def deliveries_per_second(self) -> float:
        return len(self.load.changes) / self.deliver_seconds if self.deliver_seconds else 0.0

    @property
    def redeliveries_per_second(self) -> float:
        return self.redelivered / self.redeliver_seconds if self.redeliver_seconds else 0.0

    @property
    def backlog_per_second(self) -> float:
        if self.backlog is None or not self.backlog_seconds:
            return 0.0
        return len(self.backlog.changes) / self.backlog_seconds


# --- the run ----------------------------------------------------------------------------------------------
def run_scale(
    workdir: Path, server_url: str, workers: int, *, verify: bool = True, backlog: int = 0, redeliver: bool = False
) -> ScaleRun:
    """The whole run on a database of its own (dropped at the end). ``verify``: read back what the sandbox
    holds (versions) and verify the audit chain (not with ``redeliver``); ``backlog`` and ``redeliver``: the
    phases after the load (see the module's documentation)."""
    url = asyncio.run(fresh_database(server_url))
    try:
        return _run(workdir, url, workers, verify and not redeliver, backlog, redeliver)
    finally:
        asyncio.run(drop_database(url))


@contextlib.contextmanager
def _flat_out(url: str, workers: int, env: dict[str, str], log: Path) -> Iterator[list[datetime]]:
    """Workers started on a locked outbox; yields (once it is released) a list holding the release time.
    The workers stop (SIGTERM) when the block ends."""
    with contextlib.ExitStack() as running:
        with outbox_locked(url) as released:
            pids = [running.enter_context(process([PEERLINK, "worker"], env, log)) for _ in range(workers)]
            settle(pids)  # started up, waiting at their first claim
        yield released


def _run(workdir: Path, url: str, workers: int, verify: bool, backlog: int, redeliver: bool) -> ScaleRun:
    workdir.mkdir(parents=True, exist_ok=True)
    upgrade(url)
    ports = [free_port() for _ in range(GATEWAYS)]
    bases = [f"http://127.0.0.1:{port}" for port in ports]
    keys_dir = workdir / "keys"
    env = {
        **os.environ,
        "PEERLINK_DATABASE_URL": url,
        "PEERLINK_KEYS_DIR": str(keys_dir),
        "PEERLINK_LOG_LEVEL": "WARNING",
        "PEERLINK_HOST": "127.0.0.1",
        "PEERLINK_PORT": str(ports[0]),
        "PEERLINK_PUBLIC_URL": bases[0],  # one issuer and audience for every gateway
        "PEERLINK_ACCESS_TOKEN_SECONDS": "3600",
        "PEERLINK_WORKER_IN_PROCESS": "false",
        "PEERLINK_WORKER_IDLE_SECONDS": "0.1",
    }
    for step in (["seed"], ["keys", "list"]):  # the demo program and client; the signing keys, shared
        subprocess.run([PEERLINK, *step], env=env, check=True, capture_output=True, timeout=120)
    run = ScaleRun(workers)
    logs = [workdir / f"gateway-{i + 1}.log" for i in range(GATEWAYS)] + [workdir / "workers.log"]
    with contextlib.ExitStack() as stack:
        sandbox = stack.enter_context(running_sandbox(workdir, ready_timeout=STARTUP_SECONDS))
        logs.append(sandbox.log)
        asyncio.run(_pair(Settings(database_url=url, keys_dir=keys_dir), sandbox, url))
        roles: dict[str, list[int]] = {"gateways": [], "workers": [], "sandbox": [sandbox.pid]}
        for i, port in enumerate(ports):  # one after another
            gateway = process([PEERLINK, "serve"], {**env, "PEERLINK_PORT": str(port)}, logs[i], f"{bases[i]}/readyz")
            roles["gateways"].append(stack.enter_context(gateway))
        token = subprocess.run(
            [PEERLINK, "token", "--url", f"{bases[0]}/auth/token"],
            env=env,
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout.strip()
        writer = _Writer(bases, token)
        asyncio.run(writer.prepare(PARTICIPANTS))
        before = _sandbox_state(sandbox)
        run.outbox_before = asyncio.run(_outbox(url))

        # the load, delivered while it is written
        with contextlib.ExitStack() as running:
            for _ in range(workers):
                roles["workers"].append(running.enter_context(process([PEERLINK, "worker"], env, logs[-2])))
            settle(roles["workers"])  # started up: their start-up is not the load's
            used = {role: sum(cpu_seconds(pid) for pid in pids) for role, pids in roles.items()}
            backends = {pid: cpu_seconds(pid) for pid in asyncio.run(_backends(url))}
            machine, ours, wall = machine_busy_seconds(), time.process_time(), time.perf_counter()
            began = datetime.now(UTC)
            total = SESSIONS_WITH_NOTES + SESSIONS_ALONE
            # sessions with and without a note spread evenly, so the mix is the same all along
            plan = [
                (i, i * SESSIONS_WITH_NOTES // total != (i + 1) * SESSIONS_WITH_NOTES // total) for i in range(total)
            ]
            asyncio.run(writer.write(run.load, plan))
            run.drained, last = asyncio.run(_drained(url, run.load.changes))
            run.window_seconds = time.perf_counter() - wall
            run.cpu = {role: sum(cpu_seconds(pid) for pid in pids) - used[role] for role, pids in roles.items()}
            run.cpu["load"] = time.process_time() - ours
            # PostgreSQL: its backends serving this database (one that ended meanwhile is not counted)
            run.cpu["postgres"] = sum(cpu_seconds(pid) - backends.get(pid, 0.0) for pid in asyncio.run(_backends(url)))
            run.cpu["machine"] = machine_busy_seconds() - machine
            run.deliver_seconds = (last - began).total_seconds() if last else 0.0
            roles["workers"].clear()
        # the workers have stopped (SIGTERM: what they held went back to the queue)

        if backlog:  # written while no worker runs, then delivered at full speed
            run.backlog = Writes()
            plan = [(total + i, True) for i in range(backlog)]
            asyncio.run(writer.write(run.backlog, plan))
            with _flat_out(url, workers, env, logs[-2]) as released:
                run.backlog_drained, last = asyncio.run(_drained(url, run.backlog.changes))
            run.backlog_seconds = (last - released[0]).total_seconds() if last else 0.0

        if redeliver:  # everything once more, as if the EHR had lost it all
            run.redelivered = asyncio.run(_requeue(url))
            with _flat_out(url, workers, env, logs[-2]) as released:
                run.redeliver_drained, last = asyncio.run(_drained(url, run.sessions + run.notes))
            run.redeliver_seconds = (last - released[0]).total_seconds() if last else 0.0

        run.outbox_after = asyncio.run(_outbox(url))
        run.rows = asyncio.run(_rows(url, run.sessions + run.notes))
        after = _sandbox_state(sandbox)
        run.sandbox_added = {
            t: after["counts"].get(t, 0) - before["counts"].get(t, 0) for t in ("Encounter", "DocumentReference")
        }
        if verify:
            wanted = {"Encounter": run.sessions, "DocumentReference": run.notes}
            run.versions = asyncio.run(_versions(sandbox, keys_dir, wanted))
            run.audit = audit_check(env)
    for log in logs:
        text = log.read_text(errors="replace") if log.exists() else ""
        lines = text.splitlines()
        if "Traceback" in text or any(line.startswith(("ERROR", "CRITICAL")) or _json_error(line) for line in lines):
            run.logs[log.name] = text[-3000:]
        if log == sandbox.log:  # what the EHR answered the workers
            run.ehr_statuses = Counter(_fhir_status(line) for line in lines if '"fhir request"' in line)
    return run


def _json_error(line: str) -> bool:
    return line.startswith("{") and ('"level": "error"' in line or '"level": "critical"' in line)


def _fhir_status(line: str) -> int:
    try:
        return int(json.loads(line)["status"])
    except (ValueError, KeyError, TypeError):
        return 0


async def _pair(settings: Settings, sandbox: RunningSandbox, url: str) -> None:
    await pair(settings, sandbox.root, sandbox.admin_secret, sandbox.fhir_base)
    database = Database(url)
    try:
        async with database.transaction() as conn:  # else the connection's request budget is what is measured
            await conn.execute(ehr_connections.update().values(rate_per_second=100_000))
    finally:
        await database.dispose()


def _sandbox_state(sandbox: RunningSandbox) -> dict[str, Any]:
    response = httpx.get(f"{sandbox.root}/sandbox/state", headers={ADMIN_HEADER: sandbox.admin_secret}, timeout=30)
    response.raise_for_status()
    state: dict[str, Any] = response.json()
    return state


class _Refused(Exception):
    pass


class _Writer:
    """Peer-API writes as the demo client, CONCURRENCY in flight, each to the next gateway in turn."""

    def __init__(self, bases: list[str], token: str) -> None:
        self.bases = bases
        self.headers = {"Authorization": f"Bearer {token}"}
        self.participants: list[str] = []
        self.specialists: list[str] = []
        self.first = datetime.now(UTC) - timedelta(days=60)

    async def prepare(self, total: int) -> None:
        """Consenting participants up to ``total``; the participants and active specialists to write for."""
        today = date.today()
        async with httpx.AsyncClient(base_url=self.bases[0], headers=self.headers, timeout=60) as http:

            async def items(path: str) -> list[dict[str, Any]]:
                response = await http.get(path, params={"limit": 500})
                response.raise_for_status()
                found: list[dict[str, Any]] = response.json()["items"]
                return found

            gate = asyncio.Semaphore(CONCURRENCY)

            async def one(i: int) -> None:
                async with gate:
                    made = await http.post(
                        "/peer/v1/participants",
                        json={
                            "name": {"family": f"Scale{i:03d}", "given": ["Pat"]},
                            "birth_date": "1980-01-01",
                            "gender": "unknown",
                        },
                    )
                    made.raise_for_status()
                    period = {"start": str(today - timedelta(days=1)), "end": str(today + timedelta(days=300))}
                    consent = await http.post(
                        "/peer/v1/consents",
                        json={
                            "participant_id": made.json()["id"],
                            "recipient": SANDBOX_HOSPITAL,
                            "categories": ["encounters", "notes", "demographics"],
                            "period": period,
                        },
                    )
                    consent.raise_for_status()

            missing = total - len(await items("/peer/v1/participants"))
            await asyncio.gather(*(one(i) for i in range(max(0, missing))))
            self.participants = [p["id"] for p in await items("/peer/v1/participants")]
            self.specialists = [s["id"] for s in await items("/peer/v1/specialists") if s.get("active", True)]

    async def write(self, tally: Writes, plan: list[tuple[int, bool]]) -> None:
        """For each (i, with_note) of ``plan``: a finished session, and with_note a note created and signed."""
        limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
        clients = [httpx.AsyncClient(base_url=b, headers=self.headers, timeout=60, limits=limits) for b in self.bases]
        turn = itertools.count()

        async def post(path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
            http = clients[next(turn) % len(clients)]
            sent = time.perf_counter()
            response = await (http.post(path, json=body) if body is not None else http.post(path))
            tally.latencies.append(time.perf_counter() - sent)
            tally.count += 1
            tally.statuses[response.status_code] += 1
            if not 200 <= response.status_code < 300:
                if len(tally.failures) < 10:
                    tally.failures.append(f"POST {http.base_url}{path}: {response.status_code} {response.text[:500]}")
                raise _Refused
            answer: dict[str, Any] = response.json()
            return answer

        async def unit(i: int, with_note: bool) -> None:
            specialist = self.specialists[i % len(self.specialists)]
            start = self.first + timedelta(minutes=45 * i)
            session = await post(
                "/peer/v1/encounters",
                {
                    "participant_id": self.participants[i % len(self.participants)],
                    "specialist_id": specialist,
                    "start": start.isoformat(),
                    "end": (start + timedelta(minutes=40)).isoformat(),
                    "modality": ("phone", "video", "in-person")[i % 3],
                    "support_categories": ["emotional"],
                    "status": "finished",
                },
            )
            tally.sessions.append(session["id"])
            if with_note:
                note = await post(
                    "/peer/v1/notes",
                    {"encounter_id": session["id"], "author_id": specialist, "text": f"Check-in number {i}."},
                )
                await post(f"/peer/v1/notes/{note['id']}/sign")
                tally.notes.append(note["id"])

        work = iter(plan)

        async def sender() -> None:
            for i, with_note in work:  # one iterator shared by every sender
                with contextlib.suppress(_Refused):
                    await unit(i, with_note)

        began = time.perf_counter()
        try:
            await asyncio.gather(*(sender() for _ in range(CONCURRENCY)))
        finally:
            tally.seconds = time.perf_counter() - began
            for http in clients:
                await http.aclose()


async def _drained(url: str, record_ids: list[str]) -> tuple[bool, datetime | None]:
    """Waits until no outbox row is pending or sending (or DRAIN_TIMEOUT_SECONDS); whether it got there,
    and when the last of ``record_ids`` was delivered."""
    conn = await asyncpg.connect(_dsn(url))
    try:
        drained = False
        deadline = time.monotonic() + DRAIN_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if await conn.fetchval("SELECT count(*) FROM outbox WHERE state IN ('pending', 'sending')") == 0:
                drained = True
                break
            await asyncio.sleep(0.05)
        last: datetime | None = await conn.fetchval(
            "SELECT max(finished_at) FROM outbox WHERE state = 'delivered' AND record_id = ANY($1::text[])",
            record_ids,
        )
    finally:
        await conn.close()
    return drained, last


async def _requeue(url: str) -> int:
    """Every delivered change back to pending, and nothing known to be held by the EHR. Returns the rows."""
    conn = await asyncpg.connect(_dsn(url))
    try:
        async with conn.transaction():
            await conn.execute("DELETE FROM ehr_resources")
            done = await conn.execute(
                "UPDATE outbox SET state = 'pending', attempts = 0, next_attempt_at = now(), finished_at = NULL "
                "WHERE state = 'delivered'"
            )
    finally:
        await conn.close()
    return int(done.split()[-1])


async def _backends(url: str) -> list[int]:
    """Process ids of the PostgreSQL backends connected to the database (the server is on this machine)."""
    conn = await asyncpg.connect(_dsn(url))
    try:
        pids = await conn.fetch("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
        own = await conn.fetchval("SELECT pg_backend_pid()")
    finally:
        await conn.close()
    return [r["pid"] for r in pids if r["pid"] != own]


async def _outbox(url: str) -> dict[tuple[str, str], int]:
    conn = await asyncpg.connect(_dsn(url))
    try:
        rows = await conn.fetch("SELECT kind, state, count(*) AS n FROM outbox GROUP BY kind, state")
    finally:
        await conn.close()
    return {(r["kind"], r["state"]): r["n"] for r in rows}


async def _rows(url: str, record_ids: list[str]) -> dict[str, int]:
    conn = await asyncpg.connect(_dsn(url))
    try:
        rows = await conn.fetch(
            "SELECT state, count(*) AS n FROM outbox WHERE record_id = ANY($1::text[]) GROUP BY state", record_ids
        )
    finally:
        await conn.close()
    return {r["state"]: r["n"] for r in rows}


async def _versions(
    sandbox: RunningSandbox, keys_dir: Path, wanted: dict[str, list[str]]
) -> dict[str, dict[str, list[str]]]:
    """Every resource of the given types, read back from the sandbox as the gateway's client there: per
    type, our record id -> the versionIds of the resources whose identifier carries it."""
    key = private_key_file(keys_dir / "sandbox-connection.pem")
    token = (await fetch_token(sandbox.token_url, "peerlink", key))["access_token"]
    found: dict[str, dict[str, list[str]]] = {}
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=60) as http:
        for resource_type, ids in wanted.items():
            seen: dict[str, list[str]] = {i: [] for i in ids}
            next_url: str | None = f"{sandbox.fhir_base}/{resource_type}?_count=100"
            while next_url:
                response = await http.get(next_url)
                response.raise_for_status()
                bundle = response.json()
                for entry in bundle.get("entry") or []:
                    resource = entry["resource"]
                    for ident in resource.get("identifier") or []:
                        if ident.get("value") in seen:
                            seen[ident["value"]].append(resource["meta"]["versionId"])
                next_url = next((link["url"] for link in bundle.get("link", []) if link["relation"] == "next"), None)
            found[resource_type] = seen
    return found


def audit_check(env: dict[str, str]) -> AuditCheck:
    """`peerlink audit verify` when the command is there; else the same walk in-process."""
    probe = subprocess.run([PEERLINK, "audit", "verify", "--help"], env=env, capture_output=True, timeout=60)
    if probe.returncode == 0:
        done = subprocess.run([PEERLINK, "audit", "verify"], env=env, capture_output=True, text=True, timeout=300)
        return AuditCheck("peerlink audit verify", done.returncode == 0, (done.stdout + done.stderr)[-2000:])
    from service.audit.verify import verify

    async def walk() -> AuditCheck:
        database = Database(env["PEERLINK_DATABASE_URL"])
        try:
            report = await verify(database)
        finally:
            await database.dispose()
        return AuditCheck("service.audit.verify (no `peerlink audit verify` command yet)", report.ok, report.summary())

    return asyncio.run(walk())
