"""The outbox worker: claims queued changes, delivers them to their EHRs, records each outcome, and
polls EHRs for referrals when due. Several may run at once (`peerlink worker` processes, or one inside
`peerlink serve`); they share nothing but the database."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from service.audit import AuditRecord, write
from service.domain import Program
from service.records.fhir_preview import fhir_resources
from service.settings import Settings
from service.store import Database, RecordRepository
from service.store import kinds as k
from service.store.tables import ehr_connections, ehr_referrals

from . import connections, delivery, outbox, polling
from .connections import EhrConnection, KeyUnavailable
from .delivery import Delivered, Permanent, Retryable
from .retry import Circuit, delay, expired
from .smart_client import SmartClient

log = logging.getLogger("peerlink.exchange")
FLOW_BATCHES = 10
"""Batches a running worker delivers in one go before it looks at its polls again."""
LEASE_CHECKS = 4
"""How often per lease a worker looks for the rows of workers whose leases ran out."""


@dataclass
class Counters:
    """What this worker did, per connection (the queue's own state is in the database)."""

    delivered: int = 0
    retried: int = 0
    dead: int = 0
    withheld: int = 0
    polls: int = 0
    token_failures: int = 0


@dataclass
class RateLimit:
    per_second: int
    _next: float = 0.0

    async def wait(self, requests: int = 1) -> None:
        now = time.monotonic()
        start = max(now, self._next)
        self._next = start + requests / max(self.per_second, 1)
        if start > now:
            await asyncio.sleep(start - now)


@dataclass
class Gathered:
    """A claimed batch of one connection's pushes, checked and mapped, ready to go in one Bundle."""

    connection: EhrConnection
    client: SmartClient
    rows: list[outbox.Claimed]
    outgoing: list[delivery.Outgoing]
    held: dict[str, tuple[str, str]]


@dataclass
class Flight:
    """A gathered batch on its way to the EHR; ``answer`` is what it wrote, or raises why not."""

    batch: Gathered
    answer: asyncio.Task[Delivered]

    @property
    def pks(self) -> list[int]:
        return [row.pk for row in self.batch.rows]


Outcome = Delivered | Exception


@dataclass
class Worker:
    database: Database
    settings: Settings
    transport: httpx.AsyncBaseTransport | None = None
    name: str = field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}")
    counters: dict[str, Counters] = field(default_factory=lambda: defaultdict(Counters))

    def __post_init__(self) -> None:
        self.circuit = Circuit(self.settings.circuit_failures, self.settings.circuit_open_seconds)
        self._clients: dict[str, tuple[EhrConnection, SmartClient]] = {}
        self._limits: dict[str, RateLimit] = {}
        self._programs: dict[str, Program] = {}
        self._leases_checked = -float("inf")  # when this worker last looked for leases that ran out

    # --- the loop --------------------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """Until ``stop`` is set: deliver, poll when due, rest when idle; then give back what it holds."""
        try:
            while not stop.is_set():
                try:
                    busy = await self.flow(limit=self.settings.outbox_batch * FLOW_BATCHES, stop=stop)
                    busy += await self.poll_due()
                except Exception:  # a database outage must not end the worker; it retries after a rest
                    log.exception("worker cycle failed")
                    busy = 0
                if not busy:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), self.settings.worker_idle_seconds)
        finally:
            async with self.database.transaction() as conn:
                await outbox.release(conn, self.name)
            for _, client in self._clients.values():
                await client.aclose()

    async def run_once(self, only: str | None = None) -> int:
        """Claim one batch and deliver it. Returns the number of changes handled."""
        claimed = await self._claim(only)
        await self._deliver_claimed(claimed)
        return len(claimed)

    async def drain(self, only: str | None = None, limit: int = 10_000) -> int:
        """Deliver until nothing is due (tests, `peerlink worker --once`)."""
        return await self.flow(only, limit)

    async def flow(self, only: str | None = None, limit: int = 10_000, stop: asyncio.Event | None = None) -> int:
        """Batch after batch until nothing is due (or ``limit`` changes, or ``stop``): each batch is
        claimed and gathered while the one before is on the wire, sent once that one's answer is in,
        and the one before is recorded while it travels. A batch may hold the next changes of the
        participants in the batch on the wire; it is given back, unsent, if that one fails, so every
        participant's changes still reach the EHR in order. Returns the changes handled."""
        handled = 0
        flight: Flight | None = None
        try:
            while handled < limit and not (stop is not None and stop.is_set()):
                target = only if flight is None else flight.batch.connection.name
                claimed = await self._claim(target, behind=flight.pks if flight is not None else ())
                if not claimed:
                    break
                handled += len(claimed)
                batch = await self._gather_claimed(claimed)
                if batch is not None and not batch.rows:  # all withheld: nothing to send
                    continue
                if flight is not None:
                    outcome = await self._answer(flight)
                    if isinstance(outcome, Delivered) and batch is not None:
                        landed, flight = flight, await self._launch(batch, outcome)
                        await self._record(landed, outcome)
                        continue
                    await self._record(flight, outcome)
                    flight = None
                    if not isinstance(outcome, Delivered):  # what was claimed behind it waits for it
                        async with self.database.transaction() as conn:
                            handled -= await outbox.release(conn, self.name, [r.pk for r in claimed])
                        continue
                if batch is None:
                    await self._deliver_claimed(claimed)
                else:
                    flight = await self._launch(batch, None)
        except BaseException:
            if flight is not None:  # its rows stay leased: they go again when the lease runs out
                flight.answer.cancel()
            raise
        if flight is not None:
            await self._record(flight, await self._answer(flight))
        return handled

    async def _claim(self, only: str | None, behind: list[int] | tuple[()] = ()) -> list[outbox.Claimed]:
        lease = self.settings.outbox_lease_seconds
        expire = time.monotonic() >= self._leases_checked + lease / LEASE_CHECKS
        async with self.database.transaction() as conn:
            claimed = await outbox.claim(
                conn,
                self.name,
                datetime.now(UTC),
                lease=timedelta(seconds=lease),
                limit=self.settings.outbox_batch,
                skip=self.circuit.open(),
                only=only,
                behind=behind,
                expire=expire,
            )
        if expire:
            self._leases_checked = time.monotonic()
        return claimed

    async def _deliver_claimed(self, claimed: list[outbox.Claimed]) -> None:
        by_connection: dict[str, list[outbox.Claimed]] = defaultdict(list)
        for row in claimed:
            by_connection[row.connection].append(row)
        for name, rows in by_connection.items():
            await self._deliver_all(name, rows)

    # --- delivering --------------------------------------------------------------------------------------
    async def _client(self, name: str) -> tuple[EhrConnection, SmartClient]:
        async with self.database.read() as conn:
            connection = await connections.get(conn, name)
        cached = self._clients.get(name)
        if cached is not None and cached[0] == connection:  # same settings: keep the client (token, keep-alive)
            self._clients[name] = (connection, cached[1])  # with the current poll cursor
            return connection, cached[1]
        if cached is not None:
            await cached[1].aclose()
        client = SmartClient(connection, connection.private_key(), transport=self.transport)
        self._clients[name] = (connection, client)
        self._limits[name] = RateLimit(connection.rate_per_second)
        return connection, client

    async def warm_up(self, name: str) -> None:
        """Key, discovery, token and CapabilityStatement of a connection, ahead of its first delivery."""
        _, client = await self._client(name)
        await client.access_token()
        await client.capabilities()

    async def _program(self, conn: AsyncConnection, program_id: str) -> Program:
        if program_id not in self._programs:
            self._programs[program_id] = await RecordRepository(k.PROGRAMS).get(conn, None, program_id)
        return self._programs[program_id]

    async def _deliver_all(self, name: str, rows: list[outbox.Claimed]) -> None:
        try:
            connection, client = await self._client(name)
        except (KeyUnavailable, Exception) as error:
            reason = str(error) if isinstance(error, KeyUnavailable) else f"connection unusable: {type(error).__name__}"
            for row in rows:
                await self._failed(name, row, Retryable(reason))
            return
        if not connection.enabled:
            for row in rows:
                await self._failed(name, row, Retryable("the connection is disabled"))
            return
        pushes = [r for r in rows if r.kind != "referral"]
        if len(pushes) > 1 and await self._batch(connection, client, pushes):
            pushes = []
        for row in [*pushes, *(r for r in rows if r.kind == "referral")]:
            await self._deliver_one(connection, client, row)

    async def _prepare(
        self, connection: EhrConnection, rows: list[outbox.Claimed]
    ) -> tuple[list[outbox.Claimed], list[delivery.Outgoing], dict[str, tuple[str, str]], list[outbox.Claimed]]:
        """Rows still allowed (consent re-checked now), their resources, what the EHR holds; and the withheld."""
        async with self.database.read() as conn:
            program = await self._program(conn, rows[0].program_id)
            may = await outbox.sendable(conn, program, connection, rows)
            allowed = [r for r in rows if r.pk in may]
            withheld = [r for r in rows if r.pk not in may]
            changes = [(r.kind, r.record_id) for r in allowed]
            outgoing = await delivery.collect_many(conn, program, connection, changes) if changes else []
            held = await delivery.held(conn, connection.name, [o.reference for o in outgoing])
        return allowed, outgoing, held, withheld

    async def _batch(self, connection: EhrConnection, client: SmartClient, rows: list[outbox.Claimed]) -> bool:
        """All the batch in one go (one transaction Bundle where the EHR takes them). False when it must
        go row by row instead (a refused batch is split to find the change the EHR refuses; the others
        still go)."""
        try:
            batch = await self._gather(connection, client, rows)
        except Exception:
            log.exception("batch preparation failed")
            return False
        if batch.rows:
            flight = await self._launch(batch, None)
            await self._record(flight, await self._answer(flight))
        return True

    async def _gather(self, connection: EhrConnection, client: SmartClient, rows: list[outbox.Claimed]) -> Gathered:
        """The rows consent still allows, with their resources (the others are withheld now)."""
        allowed, outgoing, held, withheld = await self._prepare(connection, rows)
        await self._withhold(withheld)
        return Gathered(connection, client, allowed, outgoing, held)

    async def _gather_claimed(self, claimed: list[outbox.Claimed]) -> Gathered | None:
        """A claim gathered to go as one batch; None when it must take the one-by-one path instead
        (referral updates, several connections, the connection unusable)."""
        names = {row.connection for row in claimed}
        if len(names) != 1 or any(r.kind == "referral" for r in claimed):
            return None
        try:
            connection, client = await self._client(names.pop())
            if not connection.enabled:
                return None
            return await self._gather(connection, client, claimed)
        except Exception:
            return None  # the one-by-one path meets the same problem and records it per row

    async def _launch(self, batch: Gathered, before: Delivered | None) -> Flight:
        """Send a batch; what the batch before it wrote counts as held (it is not sent twice)."""
        held = {**batch.held, **before.written} if before is not None else batch.held
        await self._limits[batch.connection.name].wait()
        sending = delivery.send(batch.client, batch.outgoing, held, batched=self.settings.outbox_bundles)
        return Flight(batch, asyncio.ensure_future(sending))

    @staticmethod
    async def _answer(flight: Flight) -> Outcome:
        try:
            return await flight.answer
        except Exception as error:  # recorded per row by _record
            if not isinstance(error, (Permanent, Retryable)):
                log.exception("batch delivery failed unexpectedly")
            return error

    async def _record(self, flight: Flight, outcome: Outcome) -> None:
        """A batch's outcome: delivered; retried later (the EHR is unreachable or busy); or, refused,
        split to find the change the EHR refuses while the others still go."""
        batch = flight.batch
        if isinstance(outcome, Delivered):
            await self._delivered(batch.connection, batch.rows, outcome)
        elif isinstance(outcome, Retryable):
            for row in batch.rows:
                await self._failed(batch.connection.name, row, outcome)
        else:
            for row in batch.rows:
                await self._deliver_one(batch.connection, batch.client, row)

    async def _deliver_one(self, connection: EhrConnection, client: SmartClient, row: outbox.Claimed) -> None:
        try:
            if row.kind == "referral":
                sent = await self._push_referral(connection, client, row)
                if sent is None:
                    return
            else:
                _allowed, outgoing, held, withheld = await self._prepare(connection, [row])
                if withheld:
                    await self._withhold(withheld)
                    return
                await self._limits[connection.name].wait()
                sent = await delivery.send(client, outgoing, held, batched=self.settings.outbox_bundles)
        except Retryable as error:
            await self._failed(connection.name, row, error)
            return
        except Permanent as error:
            await self._dead(connection.name, row, error.reason)
            return
        except Exception as error:
            log.exception("delivery failed unexpectedly")
            await self._dead(connection.name, row, f"internal error: {type(error).__name__}")
            return
        await self._delivered(connection, [row], sent)

    async def _push_referral(
        self, connection: EhrConnection, client: SmartClient, row: outbox.Claimed
    ) -> Delivered | None:
        async with self.database.read() as conn:
            program = await self._program(conn, row.program_id)
            r = ehr_referrals.c
            task_id = (
                await conn.execute(
                    select(r.task_id).where(r.connection == connection.name, r.referral_id == row.record_id).limit(1)
                )
            ).scalar()
            resources = await fhir_resources(conn, program, "referral", row.record_id, connection.profile)
        if task_id is None:
            await self._withhold([row])
            return None
        ours = next(res for res in resources if res["resourceType"] == "Task")
        ours, sent = await self._with_outputs(connection, client, program, ours)
        await self._limits[connection.name].wait()
        await delivery.update_task(client, task_id, ours)
        return sent

    async def _with_outputs(
        self, connection: EhrConnection, client: SmartClient, program: Program, task: dict[str, Any]
    ) -> tuple[dict[str, Any], Delivered]:
        """The sessions a Task lists as outputs must exist at the EHR before the Task points at them:
        those the participant's consent lets this EHR have are sent first; the others are left out."""
        kept: list[dict[str, Any]] = []
        outgoing: dict[str, delivery.Outgoing] = {}
        async with self.database.read() as conn:
            for output in task.get("output") or []:
                reference = (output.get("valueReference") or {}).get("reference") or ""
                if not reference.startswith("Encounter/"):
                    kept.append(output)
                    continue
                source = await delivery.source_of(conn, program.id, reference)
                if source is None:
                    continue
                record_id, participant_id = source
                if not await outbox.may_send(conn, program, connection, "encounter", record_id, participant_id):
                    continue
                kept.append(output)
                for item in await delivery.collect(conn, program, connection, "encounter", record_id):
                    outgoing.setdefault(item.reference, item)
            ordered = sorted(outgoing.values(), key=lambda o: o.rank)
            held = await delivery.held(conn, connection.name, [o.reference for o in ordered])
        sent = (
            await delivery.send(client, ordered, held, batched=self.settings.outbox_bundles) if ordered else Delivered()
        )
        trimmed = {**task, "output": kept} if kept else {k: v for k, v in task.items() if k != "output"}
        return trimmed, sent

    # --- outcomes ------------------------------------------------------------------------------------
    async def _delivered(self, connection: EhrConnection, rows: list[outbox.Claimed], sent: Delivered) -> None:
        now = datetime.now(UTC)
        self.circuit.succeeded(connection.name)
        async with self.database.transaction() as conn:
            done = await outbox.finish(conn, [r.pk for r in rows], self.name, "delivered", now, None)
            await delivery.remember(conn, connection.name, sent, now)
            await conn.execute(
                update(ehr_connections).where(ehr_connections.c.name == connection.name).values(last_success_at=now)
            )
            await write(
                conn,
                AuditRecord(
                    "exchange",
                    "deliver",
                    "C",
                    "0",
                    client_id=connection.client_id,
                    organization=connection.organization,
                    program_id=rows[0].program_id,
                    detail={
                        "endpoint": connection.name,
                        "patients": sorted(sent.patients),
                        "entities": sorted(sent.written),
                        "changes": [f"{r.kind}/{r.record_id}" for r in rows],
                    },
                ),
            )
        self.counters[connection.name].delivered += done

    async def _withhold(self, rows: list[outbox.Claimed]) -> None:
        if not rows:
            return
        now = datetime.now(UTC)
        async with self.database.transaction() as conn:
            await outbox.finish(conn, [r.pk for r in rows], self.name, "withheld", now, "no consent covers it now")
        self.counters[rows[0].connection].withheld += len(rows)

    async def _failed(self, name: str, row: outbox.Claimed, error: Retryable) -> None:
        now = datetime.now(UTC)
        self.circuit.failed(name)
        counters = self.counters[name]
        if error.token:
            counters.token_failures += 1
        if expired(row.created_at, now, self.settings):
            await self._dead(name, row, f"gave up after {self.settings.retry_horizon_seconds:g} s: {error.reason}")
            return
        at = now + timedelta(seconds=delay(row.attempts, self.settings, error.retry_after))
        async with self.database.transaction() as conn:
            await outbox.retry_later(conn, row.pk, self.name, at, error.reason)
            if error.token:
                c = ehr_connections.c
                await conn.execute(
                    update(ehr_connections).where(c.name == name).values(token_failures=c.token_failures + 1)
                )
        counters.retried += 1

    async def _dead(self, name: str, row: outbox.Claimed, reason: str) -> None:
        now = datetime.now(UTC)
        async with self.database.transaction() as conn:
            await outbox.finish(conn, [row.pk], self.name, "dead", now, reason[:500])
            await write(
                conn,
                AuditRecord(
                    "exchange",
                    "deliver",
                    "C",
                    "8",
                    program_id=row.program_id,
                    detail={"endpoint": name, "changes": [f"{row.kind}/{row.record_id}"], "reason": reason[:500]},
                ),
            )
        self.counters[name].dead += 1

    # --- polling -------------------------------------------------------------------------------------
    async def poll_due(self, force: str | None = None) -> int:
        """Poll every connection whose interval has passed (one worker takes each poll)."""
        now = datetime.now(UTC)
        async with self.database.read() as conn:
            due = [
                c
                for c in await connections.list_all(conn)
                if c.enabled and c.poll_referrals and (force in (None, c.name))
            ]
        handled = 0
        for connection in due:
            if not await self._take_poll(connection, now, force is not None):
                continue
            handled += await self.poll_one(connection)
        return handled

    async def _take_poll(self, connection: EhrConnection, now: datetime, forced: bool) -> bool:
        c = ehr_connections.c
        condition: list[Any] = [c.name == connection.name]
        if not forced:
            condition.append(
                or_(c.polled_at.is_(None), c.polled_at <= now - timedelta(seconds=connection.poll_seconds))
            )
        async with self.database.transaction() as conn:
            taken = await conn.execute(update(ehr_connections).where(*condition).values(polled_at=now))
        return bool(taken.rowcount)

    async def poll_one(self, connection: EhrConnection) -> int:
        try:
            connection, client = await self._client(connection.name)
        except KeyUnavailable as error:
            log.warning("poll skipped: %s", error)
            return 0
        async with self.database.read() as conn:
            program = await self._program(conn, connection.program_id)
        outcome = "0"
        try:
            result = await polling.poll(self.database, program, connection, client)
        except (Retryable, Permanent) as error:
            result, outcome = polling.PollResult(refused=[error.reason]), "8"
        self.counters[connection.name].polls += 1
        await write(
            self.database,
            AuditRecord(
                "exchange",
                "poll",
                "R",
                outcome,  # type: ignore[arg-type]
                client_id=connection.client_id,
                organization=connection.organization,
                program_id=connection.program_id,
                detail={
                    "endpoint": connection.name,
                    "tasks": result.tasks,
                    "received": result.received,
                    "known": result.known,
                    "refused": result.refused[:20],
                },
            ),
        )
        return result.received
