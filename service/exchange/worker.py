"""The outbox worker: claims queued changes, hands them to ``delivery`` (which records each outcome),
and polls EHRs for referrals when due (``poll_schedule``). Several may run at once (`peerlink worker`
processes, or one inside `peerlink serve`); they share nothing but the database."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx

from service.settings import Settings
from service.store import Database

from . import outbox
from .connections import EhrConnection
from .delivery import Delivery, Flight
from .endpoints import Endpoints, RateLimit
from .outcomes import Counters, Outcomes
from .outgoing import Delivered
from .poll_schedule import PollSchedule
from .retry import Circuit
from .smart_client import SmartClient
from .subscription_delivery import SubscriptionDelivery

__all__ = ["Counters", "RateLimit", "Worker"]

log = logging.getLogger("peerlink.exchange")
FLOW_BATCHES = 10
"""Batches a running worker delivers in one go before it looks at its polls again."""
LEASE_CHECKS = 4
"""How often per lease a worker looks for the rows of workers whose leases ran out."""


@dataclass
class Worker:
    database: Database
    settings: Settings
    transport: httpx.AsyncBaseTransport | None = None
    name: str = field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}")

    def __post_init__(self) -> None:
        self.circuit = Circuit(self.settings.circuit_failures, self.settings.circuit_open_seconds)
        self.endpoints = Endpoints(self.database, self.transport)
        self.outcomes = Outcomes(self.database, self.settings, self.name, self.circuit)
        self.delivery = Delivery(self.database, self.settings, self.endpoints, self.outcomes)
        self.polls = PollSchedule(self.database, self.endpoints, self.outcomes)
        self.subscriptions = SubscriptionDelivery(self.database, self.settings, self.name, self.transport)
        self._leases_checked = -float("inf")  # when this worker last looked for leases that ran out

    @property
    def counters(self) -> dict[str, Counters]:
        """What this worker did, per connection."""
        return self.outcomes.counters

    @property
    def _clients(self) -> dict[str, tuple[EhrConnection, SmartClient]]:
        return self.endpoints.clients

    # --- the loop --------------------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """Until ``stop`` is set: deliver, poll when due, rest when idle; then give back what it holds."""
        try:
            while not stop.is_set():
                try:
                    busy = await self.flow(limit=self.settings.outbox_batch * FLOW_BATCHES, stop=stop)
                    busy += await self.poll_due()
                    busy += await self.subscriptions.run_due()  # handshakes, notifications, heartbeats
                except Exception:  # a database outage must not end the worker; it retries after a rest
                    log.exception("worker cycle failed")
                    busy = 0
                if not busy:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), self.settings.worker_idle_seconds)
        finally:
            async with self.database.transaction() as conn:
                await outbox.release(conn, self.name)
            await self.endpoints.aclose()
            await self.subscriptions.aclose()

    async def run_once(self, only: str | None = None) -> int:
        """Claim one batch and deliver it. Returns the number of changes handled."""
        claimed = await self._claim(only)
        await self.delivery.deliver_claimed(claimed)
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
        delivery = self.delivery
        try:
            while handled < limit and not (stop is not None and stop.is_set()):
                target = only if flight is None else flight.batch.connection.name
                claimed = await self._claim(target, behind=flight.pks if flight is not None else ())
                if not claimed:
                    break
                handled += len(claimed)
                batch = await delivery.gather_claimed(claimed)
                if batch is not None and not batch.rows:  # all withheld: nothing to send
                    continue
                if flight is not None:
                    outcome = await delivery.answer(flight)
                    if isinstance(outcome, Delivered) and batch is not None:
                        landed, flight = flight, await delivery.launch(batch, outcome)
                        await delivery.record(landed, outcome)
                        continue
                    await delivery.record(flight, outcome)
                    flight = None
                    if not isinstance(outcome, Delivered):  # what was claimed behind it waits for it
                        async with self.database.transaction() as conn:
                            handled -= await outbox.release(conn, self.name, [r.pk for r in claimed])
                        continue
                if batch is None:
                    await delivery.deliver_claimed(claimed)
                else:
                    flight = await delivery.launch(batch, None)
        except BaseException:
            if flight is not None:  # its rows stay leased: they go again when the lease runs out
                flight.answer.cancel()
            raise
        if flight is not None:
            await delivery.record(flight, await delivery.answer(flight))
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

    async def warm_up(self, name: str) -> None:
        """Key, discovery, token and CapabilityStatement of a connection, ahead of its first delivery."""
        _, client = await self.endpoints.client(name)
        await client.access_token()
        await client.capabilities()

    # --- polling -------------------------------------------------------------------------------------
    async def poll_due(self, force: str | None = None) -> int:
        """Poll every connection whose interval has passed (one worker takes each poll)."""
        return await self.polls.poll_due(force)

    async def poll_one(self, connection: EhrConnection) -> int:
        return await self.polls.poll_one(connection)
