"""Delivery throughput: resources/s the outbox worker delivers to a loopback FHIR server (the sandbox
EHR as a real process), one resource per request and in transaction Bundles, beside the floor: the
same server receiving the same requests (captured from the worker's own run) from a bare httpx loop
with one request in flight, as the worker has.

Steady state, as a running program meets it: the connection's key, discovery, token and
CapabilityStatement are fetched before the clock starts, the heap is frozen as `peerlink worker`
does, and a first untimed round of SESSIONS sessions with notes introduces the participants to the
EHR. Each of the ROUNDS timed rounds is the next SESSIONS sessions with notes. Before the floor's
replay the EHR is reset and given the first round's requests again, so it holds what it held for the
worker; the figures are totals over the timed rounds.

    python -m tests.bench.bench_exchange [SESSIONS]

Targets: >= 500 resources/s batched, and >= 0.7x the floor.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from service.cli.seed import SANDBOX_HOSPITAL, seed_demo
from service.domain import ConsentFields, ParticipantFields
from service.exchange.worker import Worker
from service.heap import freeze_heap
from service.records import operations
from service.records import types as rt
from service.records.programs import get_by_code
from service.sandbox.control import running_sandbox
from service.sandbox.pairing import pair
from service.settings import Settings
from service.store import Database
from service.store.migrate import upgrade
from service.store.tables import ehr_connections, ehr_resources, outbox
from tests.e2e.outbox_support import sessions_with_notes

TARGET_BATCHED_RPS = 500.0
TARGET_FLOOR_RATIO = 0.7
ROUNDS = 5
Write = tuple[str, str, bytes, dict[str, str]]
"""method, URL, body and headers of one request the worker sent"""


class Recording(httpx.AsyncBaseTransport):
    """The worker's transport, keeping every write it sends (to replay them as the floor)."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.writes: list[Write] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        content = await request.aread()
        if request.method in ("PUT", "POST") and not request.url.path.endswith("/token"):
            headers = {k: v for k, v in request.headers.items() if k.lower() in ("content-type", "if-none-exist")}
            self.writes.append((request.method, str(request.url), content, headers))
        return await self.inner.handle_async_request(request)


async def _seed(database: Database) -> None:
    async with database.transaction() as conn:
        assert await seed_demo(conn) is not None


PARTICIPANTS = 100


async def _participants(database: Database, count: int) -> None:
    """A program's worth of participants, each consenting to share sessions and notes with the hospital."""
    today = datetime.now(UTC).date()
    async with database.transaction() as conn:
        program = await get_by_code(conn, "demo")
        for i in range(count):
            participant = await operations.create(
                conn,
                program.id,
                rt.PARTICIPANTS,
                ParticipantFields.model_validate(
                    {
                        "name": {"family": f"Bench{i:03d}", "given": ["Pat"]},
                        "birth_date": "1980-01-01",
                        "gender": "unknown",
                    }
                ),
            )
            await operations.create(
                conn,
                program.id,
                rt.CONSENTS,
                ConsentFields.model_validate(
                    {
                        "participant_id": participant.id,
                        "recipient": SANDBOX_HOSPITAL,
                        "categories": ["encounters", "notes", "demographics"],
                        "period": {"start": str(today - timedelta(days=1)), "end": str(today + timedelta(days=300))},
                    }
                ),
            )


async def _delivered_since(database: Database, moment: datetime) -> int:
    """Resources written to the EHR since ``moment`` (each counted once, however often it went)."""
    async with database.read() as conn:
        rows = await conn.execute(ehr_resources.select().where(ehr_resources.c.delivered_at >= moment))
        return len(rows.all())


async def _queued(database: Database) -> int:
    async with database.read() as conn:
        return len((await conn.execute(outbox.select().where(outbox.c.state == "pending"))).all())


async def _run(
    workdir: Path, sandbox_root: str, secret: str, fhir_base: str, sessions: int, bundles: bool
) -> dict[str, Any]:
    url = f"sqlite+aiosqlite:///{workdir}/bench-{'b' if bundles else 's'}.db"
    upgrade(url)
    settings = Settings(
        database_url=url, keys_dir=workdir / "keys", outbox_bundles=bundles, outbox_batch=100, worker_idle_seconds=0.05
    )
    database = Database(url)
    await _reset(sandbox_root, secret)
    await _seed(database)
    await pair(settings, sandbox_root, secret, fhir_base)
    async with database.transaction() as conn:  # the connection's default 20 requests/s would be the bench
        await conn.execute(ehr_connections.update().values(rate_per_second=100_000))
    await _participants(database, PARTICIPANTS)
    recording = Recording()
    worker = Worker(database, settings, transport=recording)
    await worker.warm_up("sandbox")  # key, discovery, token, CapabilityStatement: once per connection, not per change
    freeze_heap()  # as `peerlink worker` does at start
    # Round one, untimed: the EHR gets to know the participants; both sides warm up.
    await sessions_with_notes(database, sessions)
    assert await worker.drain() == 2 * sessions
    introduction: list[Write] = recording.writes
    # Then the timed rounds: the next sessions and notes of participants the EHR holds.
    rounds: list[list[Write]] = []
    changes = resources = 0
    elapsed = 0.0
    timings: list[float] = []
    for _ in range(ROUNDS):
        recording.writes = []
        await sessions_with_notes(database, sessions)
        queued = await _queued(database)
        since = datetime.now(UTC)
        began = time.perf_counter()
        handled = await worker.drain()
        timings.append(time.perf_counter() - began)
        elapsed += timings[-1]
        assert handled == queued, f"handled {handled} of {queued}"
        changes += queued
        resources += await _delivered_since(database, since)
        rounds.append(recording.writes)
    await database.dispose()
    token = worker._clients["sandbox"][1]._token
    assert token is not None
    await _reset(sandbox_root, secret)  # the floor meets the EHR in the state the worker met it
    await _replay(introduction, token[0])
    floors = [await _replay(writes, token[0]) for writes in rounds]
    floor = sum(floors)
    return {
        "median_ratio": statistics.median(f / t for f, t in zip(floors, timings, strict=True)),
        "changes": changes,
        "resources": resources,
        "requests": sum(len(writes) for writes in rounds),
        "seconds": elapsed,
        "rps": resources / elapsed,
        "floor_seconds": floor,
        "floor_rps": resources / floor,
    }


async def _reset(sandbox_root: str, secret: str) -> None:
    async with httpx.AsyncClient(base_url=sandbox_root) as http:
        (await http.post("/sandbox/reset", headers={"X-Sandbox-Admin": secret})).raise_for_status()


async def _replay(writes: list[Write], token: str) -> float:
    """The same requests, replayed one at a time by a bare httpx client: the floor."""
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
        began = time.perf_counter()
        for method, url, content, headers in writes:
            response = await http.request(method, url, content=content, headers=headers)
            response.raise_for_status()
        return time.perf_counter() - began


def main(sessions: int = 150) -> dict[str, float]:
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="peerlink-bench-exchange-") as tmp:
        workdir = Path(tmp)
        with running_sandbox(workdir) as sandbox:
            print(
                f"Exchange benchmark: {ROUNDS} timed rounds of {sessions} sessions with signed notes "
                f"({2 * sessions} changes) of {PARTICIPANTS + 12} consenting participants the EHR already holds, "
                "to the sandbox EHR on loopback; floor = the same requests from a bare httpx loop"
            )
            heading = f"{'mode':<10}{'changes':>9}{'resources':>11}{'requests':>10}{'res/s':>9}"
            print(f"{heading}{'floor res/s':>13}{'ratio':>8}{'median':>8}")
            for label, bundles in (("single", False), ("batched", True)):
                run = asyncio.run(
                    _run(workdir, sandbox.root, sandbox.admin_secret, sandbox.fhir_base, sessions, bundles)
                )
                ratio = run["rps"] / run["floor_rps"]
                results[f"{label}_rps"] = run["rps"]
                results[f"{label}_ratio"] = ratio
                results[f"{label}_median_ratio"] = run["median_ratio"]
                print(
                    f"{label:<10}{run['changes']:>9}{run['resources']:>11}{run['requests']:>10}"
                    f"{run['rps']:>9.0f}{run['floor_rps']:>13.0f}{ratio:>7.2f}x{run['median_ratio']:>7.2f}x"
                )
    batched, ratio, median = results["batched_rps"], results["batched_ratio"], results["batched_median_ratio"]
    print("ratio: all rounds' resources/s over the floor's; median: the median round's (floor time / worker time)")
    print(
        f"batched: {batched:.0f} resources/s (target >= {TARGET_BATCHED_RPS:.0f}): "
        f"{'meets' if batched >= TARGET_BATCHED_RPS else 'BELOW'}; "
        f"{ratio:.2f}x the floor over all rounds, {median:.2f}x in the median round (target >= {TARGET_FLOOR_RATIO}): "
        f"{'meets' if min(ratio, median) >= TARGET_FLOOR_RATIO else 'BELOW'}"
    )
    return results


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 150)
