"""Subscription notification latency, commit to receipt, against a floor measured in the same run.

    python -m tests.bench.bench_subscriptions [EVENTS]

On a temporary SQLite database (migrated, the demo program seeded) a real rest-hook receiver listens
on 127.0.0.1 (`http.server` in a thread; it notes `time.perf_counter()` as each POST arrives). A
Subscription to the Gravity Task topic, filtered on `Task?status=received`, is created and
handshaken; then EVENTS (default 200) referrals, made beforehand, are each moved to `received` in a
transaction of their own, one every SPACING (50 ms). The moment each transaction has committed is
noted; the worker's loop (`Worker.run`: outbox flow, polls, subscription delivery, its idle pause of
PEERLINK_WORKER_IDLE_SECONDS when nothing was due) runs in the same event loop throughout, as
`peerlink serve` with the worker in process runs it. An event's latency is the receipt of the
notification that carries its event number minus its commit.

Two runs, each on a fresh database: the worker with its default idle pause (1 s: what a deployment
gets) and with a short one (50 ms: what the delivery itself costs, the pause mostly out of the way).
Changes arriving during one pause go out together in one notification (max count 10).

The floor: the same receiver's round trip for a bare POST (httpx, one connection, as the worker has)
of the short run's median notification bytes, repeated EVENTS times. Printed: p50 and p99 of each, and the ratio
of the short run's p50 to the floor's. No target is asserted: the latency is mostly the worker's idle
pause (a notification waits for the next loop turn), so each figure is printed beside that setting.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

TASK_TOPIC = "http://hl7.org/fhir/us/sdoh-clinicalcare/SubscriptionTopic/Task"
BACKPORT = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/"
SPACING = 0.05
IDLE_SECONDS = 0.05


@dataclass
class Receipts:
    url: str = ""
    events: dict[int, float] = field(default_factory=dict)
    """Event number -> when the notification carrying it arrived (perf_counter)."""
    kinds: list[str] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _status(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    return list(bundle.get("entry", [{}])[0].get("resource", {}).get("parameter", []))


def _received(receipts: Receipts, raw: bytes, at: float) -> None:
    try:
        bundle = json.loads(raw)
    except ValueError:  # the floor's replay is not parsed twice
        return
    parameters = _status(bundle)
    kind = next((str(p.get("valueCode")) for p in parameters if p["name"] == "type"), "")
    numbers = [
        int(part["valueString"])
        for p in parameters
        if p["name"] == "notification-event"
        for part in p["part"]
        if part["name"] == "event-number"
    ]
    with receipts.lock:
        receipts.kinds.append(kind)
        if kind == "event-notification":
            receipts.sizes.append(len(raw))
            receipts.bodies.append(raw)
            for number in numbers:
                receipts.events.setdefault(number, at)


@contextmanager
def receiver() -> Iterator[Receipts]:
    receipts = Receipts()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as a subscriber's server would

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("content-length", "0")))
            at = time.perf_counter()
            if self.path == "/hook":
                _received(receipts, raw, at)
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    receipts.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receipts
    finally:
        server.shutdown()
        server.server_close()


def subscription(endpoint: str) -> dict[str, Any]:
    return {
        "resourceType": "Subscription",
        "meta": {"profile": [BACKPORT + "backport-subscription"]},
        "status": "requested",
        "reason": "referral updates",
        "criteria": TASK_TOPIC,
        "_criteria": {
            "extension": [{"url": BACKPORT + "backport-filter-criteria", "valueString": "Task?status=received"}]
        },
        "channel": {
            "type": "rest-hook",
            "endpoint": endpoint,
            "payload": "application/fhir+json",
            "_payload": {"extension": [{"url": BACKPORT + "backport-payload-content", "valueCode": "full-resource"}]},
            "extension": [{"url": BACKPORT + "backport-max-count", "valuePositiveInt": 10}],
        },
    }


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile (share in 0..1)."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(share * len(ordered) + 0.5) - 1))]


async def _prepare(url: str, endpoint: str, count: int) -> tuple[str, list[str]]:
    """The demo program, COUNT requested referrals and the subscription (before it: no events yet)."""
    from service.cli.seed import SANDBOX_HOSPITAL, seed_demo
    from service.domain import ReferralFields
    from service.records import operations
    from service.records import subscriptions as subs
    from service.records import types as rt
    from service.store import Database
    from service.store.tables import participants

    database = Database(url)
    try:
        async with database.transaction() as conn:
            program = await seed_demo(conn)
            assert program is not None, "a fresh database is seeded"
            participant = (await conn.execute(select(participants.c.id).limit(1))).scalar_one()
            referrals = []
            for _ in range(count):
                fields = ReferralFields.model_validate(
                    {
                        "participant_id": participant,
                        "referring_organization": SANDBOX_HOSPITAL,
                        "referring_clinician": {"name": {"family": "Bench-Clinician", "given": ["Pat"]}},
                        "reason": {"text": "Peer support for engagement in outpatient care"},
                        "requested_at": datetime.now(UTC),
                    }
                )
                referrals.append((await operations.create(conn, program.id, rt.REFERRALS, fields)).id)
            parsed = subs.parse(subscription(endpoint), "http://peerlink.bench", program.identifier_system)
            await subs.create(conn, "bench-subscription", program.id, None, None, parsed, datetime.now(UTC))
        return program.id, referrals
    finally:
        await database.dispose()


async def _active(database: Any) -> bool:
    from service.store.tables import subscriptions

    async with database.read() as conn:
        status = (await conn.execute(select(subscriptions.c.status).limit(1))).scalar_one()
    return bool(status == "active")


async def _measure(
    url: str, receipts: Receipts, program_id: str, referrals: list[str], idle: float
) -> dict[int, float]:
    """Runs the worker's loop while the referrals move; returns event number -> commit time."""
    from service.domain import ReferralAction, TransitionRequest
    from service.exchange.worker import Worker
    from service.records import operations
    from service.settings import Settings
    from service.store import Database
    from service.store.tables import subscription_events

    settings = Settings(database_url=url, public_url="http://peerlink.bench", worker_idle_seconds=idle)
    database = Database(url)
    worker = Worker(database, settings, name="bench-worker")
    stop = asyncio.Event()
    loop = asyncio.create_task(worker.run(stop))
    committed: dict[int, float] = {}
    try:
        deadline = time.monotonic() + 30
        while "handshake" not in receipts.kinds:
            assert time.monotonic() < deadline, f"no handshake: {receipts.kinds}"
            await asyncio.sleep(0.01)
        # the handshake is answered before the worker records the subscription active; events are written
        # only for active subscriptions, so wait for that too (a loaded machine shows the gap)
        while not await _active(database):
            assert time.monotonic() < deadline, "the subscription did not become active"
            await asyncio.sleep(0.01)
        e = subscription_events.c
        for referral in referrals:
            async with database.transaction() as conn:
                await operations.transition_referral(
                    conn,
                    program_id,
                    referral,
                    ReferralAction.RECEIVE,
                    TransitionRequest(by="bench"),
                    expected_version=None,
                )
                number = (await conn.execute(select(e.event_number).order_by(e.pk.desc()).limit(1))).scalar_one()
            committed[int(number)] = time.perf_counter()
            await asyncio.sleep(SPACING)
        deadline = time.monotonic() + 60
        while len(receipts.events) < len(committed):
            assert time.monotonic() < deadline, f"{len(receipts.events)} of {len(committed)} events received"
            await asyncio.sleep(0.01)
    finally:
        stop.set()
        await loop
        await database.dispose()
    return committed


async def _floor(endpoint: str, body: bytes, count: int) -> list[float]:
    """A bare POST of the same bytes to the same receiver, one connection: round trips in seconds."""
    floor = endpoint.replace("/hook", "/floor")
    headers = {"Content-Type": "application/fhir+json"}
    times = []
    async with httpx.AsyncClient() as http:
        await http.post(floor, content=body, headers=headers)  # the connection, as the worker's is open
        for _ in range(count):
            started = time.perf_counter()
            answer = await http.post(floor, content=body, headers=headers)
            times.append(time.perf_counter() - started)
            assert answer.status_code == 200
    return times


def _round(count: int, idle: float) -> tuple[list[float], list[int], bytes]:
    """One run on a fresh database: latencies (s), notification sizes, the median notification."""
    from service.store.migrate import upgrade

    with tempfile.TemporaryDirectory() as tmp, receiver() as receipts:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        upgrade(url)
        program_id, referrals = asyncio.run(_prepare(url, receipts.url, count))
        committed = asyncio.run(_measure(url, receipts, program_id, referrals, idle))
    assert sorted(committed) == sorted(receipts.events), "an event was lost or not ours"
    body = sorted(receipts.bodies, key=len)[len(receipts.bodies) // 2]
    return [receipts.events[n] - at for n, at in committed.items()], receipts.sizes, body


def main(count: int = 200) -> dict[str, float]:
    """Prints the figures; returns them (milliseconds, and the ratio of the p50s, for the deployed
    idle pause; ``short_*`` for the short one)."""
    from service.settings import Settings

    deployed = float(Settings.model_fields["worker_idle_seconds"].default)
    latencies, batched, _ = _round(count, deployed)
    short, sizes, body = _round(count, IDLE_SECONDS)
    with receiver() as receipts:
        floor = asyncio.run(_floor(receipts.url, body, count))
    ms = {
        "p50_ms": percentile(latencies, 0.50),
        "p99_ms": percentile(latencies, 0.99),
        "short_p50_ms": percentile(short, 0.50),
        "short_p99_ms": percentile(short, 0.99),
        "floor_p50_ms": percentile(floor, 0.50),
        "floor_p99_ms": percentile(floor, 0.99),
    }
    figures = {key: value * 1000 for key, value in ms.items()}
    figures["ratio"] = figures["short_p50_ms"] / figures["floor_p50_ms"]
    print(
        f"subscription notifications: {count} referral status changes (Gravity Task topic) per run, "
        f"{len(sizes)} notifications of ~{statistics.median(sizes):.0f} bytes with the short idle pause "
        f"({len(batched)} with the default: events that meet in a pause go together)"
    )
    floor_line = f"p50 {figures['floor_p50_ms']:8.1f} ms  p99 {figures['floor_p99_ms']:8.1f} ms"
    print(f"  bare POST round trip (floor)        {floor_line}")
    print(
        f"  commit to receipt, idle {IDLE_SECONDS * 1000:4.0f} ms     "
        f"p50 {figures['short_p50_ms']:8.1f} ms  p99 {figures['short_p99_ms']:8.1f} ms"
    )
    print(
        f"  commit to receipt, idle {deployed * 1000:4.0f} ms     "
        f"p50 {figures['p50_ms']:8.1f} ms  p99 {figures['p99_ms']:8.1f} ms (the default PEERLINK_WORKER_IDLE_SECONDS)"
    )
    print(f"ratio latency/floor (p50, idle {IDLE_SECONDS * 1000:.0f} ms) = {figures['ratio']:.2f}")
    return figures


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200)
