"""Delivering claimed changes to their EHR: consent re-checked, resources gathered (``collect``),
written so that a retry never duplicates (``send``), and each outcome recorded (``outcomes``). A
batch of one connection's pushes goes in one go; a refused batch is split to find the change the
EHR refuses, and referral updates go one by one onto the clinic's Task (``referral_push``)."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from dataclasses import dataclass

from service.settings import Settings
from service.store import Database

from . import outbox
from .answers import Permanent, Retryable, check
from .collect import collect_many
from .connections import EhrConnection, KeyUnavailable
from .endpoints import Endpoints
from .holdings import held
from .outcomes import Outcomes
from .outgoing import Delivered, Outgoing
from .referral_push import ReferralPush
from .send import send
from .smart_client import SmartClient

__all__ = ["Delivery", "Flight", "Gathered", "Outcome", "Permanent", "Retryable", "check"]

log = logging.getLogger("peerlink.exchange")


@dataclass
class Gathered:
    """A claimed batch of one connection's pushes, checked and mapped, ready to go in one Bundle."""

    connection: EhrConnection
    client: SmartClient
    rows: list[outbox.Claimed]
    outgoing: list[Outgoing]
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


class Delivery:
    def __init__(self, database: Database, settings: Settings, endpoints: Endpoints, outcomes: Outcomes) -> None:
        self._database = database
        self._settings = settings
        self._endpoints = endpoints
        self._outcomes = outcomes
        self._referrals = ReferralPush(database, settings, endpoints, outcomes)

    async def deliver_claimed(self, claimed: list[outbox.Claimed]) -> None:
        """A claim, connection by connection."""
        by_connection: dict[str, list[outbox.Claimed]] = defaultdict(list)
        for row in claimed:
            by_connection[row.connection].append(row)
        for name, rows in by_connection.items():
            await self._deliver_all(name, rows)

    async def _deliver_all(self, name: str, rows: list[outbox.Claimed]) -> None:
        try:
            connection, client = await self._endpoints.client(name)
        except (KeyUnavailable, Exception) as error:
            reason = str(error) if isinstance(error, KeyUnavailable) else f"connection unusable: {type(error).__name__}"
            for row in rows:
                await self._outcomes.failed(name, row, Retryable(reason))
            return
        if not connection.enabled:
            for row in rows:
                await self._outcomes.failed(name, row, Retryable("the connection is disabled"))
            return
        pushes = [r for r in rows if r.kind != "referral"]
        if len(pushes) > 1 and await self._batch(connection, client, pushes):
            pushes = []
        for row in [*pushes, *(r for r in rows if r.kind == "referral")]:
            await self.deliver_one(connection, client, row)

    async def _prepare(
        self, connection: EhrConnection, rows: list[outbox.Claimed]
    ) -> tuple[list[outbox.Claimed], list[Outgoing], dict[str, tuple[str, str]], list[outbox.Claimed]]:
        """Rows still allowed (consent re-checked now), their resources, what the EHR holds; and the withheld."""
        async with self._database.read() as conn:
            program = await self._endpoints.program(conn, rows[0].program_id)
            may = await outbox.sendable(conn, program, connection, rows)
            allowed = [r for r in rows if r.pk in may]
            withheld = [r for r in rows if r.pk not in may]
            changes = [(r.kind, r.record_id) for r in allowed]
            outgoing = await collect_many(conn, program, connection, changes) if changes else []
            holding = await held(conn, connection.name, [o.reference for o in outgoing])
        return allowed, outgoing, holding, withheld

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
            flight = await self.launch(batch, None)
            await self.record(flight, await self.answer(flight))
        return True

    async def _gather(self, connection: EhrConnection, client: SmartClient, rows: list[outbox.Claimed]) -> Gathered:
        """The rows consent still allows, with their resources (the others are withheld now)."""
        allowed, outgoing, holding, withheld = await self._prepare(connection, rows)
        await self._outcomes.withhold(withheld)
        return Gathered(connection, client, allowed, outgoing, holding)

    async def gather_claimed(self, claimed: list[outbox.Claimed]) -> Gathered | None:
        """A claim gathered to go as one batch; None when it must take the one-by-one path instead
        (referral updates, several connections, the connection unusable)."""
        names = {row.connection for row in claimed}
        if len(names) != 1 or any(r.kind == "referral" for r in claimed):
            return None
        try:
            connection, client = await self._endpoints.client(names.pop())
            if not connection.enabled:
                return None
            return await self._gather(connection, client, claimed)
        except Exception:
            return None  # the one-by-one path meets the same problem and records it per row

    async def launch(self, batch: Gathered, before: Delivered | None) -> Flight:
        """Send a batch; what the batch before it wrote counts as held (it is not sent twice)."""
        holding = {**batch.held, **before.written} if before is not None else batch.held
        await self._endpoints.wait_turn(batch.connection.name)
        sending = send(batch.client, batch.outgoing, holding, batched=self._settings.outbox_bundles)
        return Flight(batch, asyncio.ensure_future(sending))

    @staticmethod
    async def answer(flight: Flight) -> Outcome:
        try:
            return await flight.answer
        except Exception as error:  # recorded per row by record
            if not isinstance(error, (Permanent, Retryable)):
                log.exception("batch delivery failed unexpectedly")
            return error

    async def record(self, flight: Flight, outcome: Outcome) -> None:
        """A batch's outcome: delivered; retried later (the EHR is unreachable or busy); or, refused,
        split to find the change the EHR refuses while the others still go."""
        batch = flight.batch
        if isinstance(outcome, Delivered):
            await self._outcomes.delivered(batch.connection, batch.rows, outcome)
        elif isinstance(outcome, Retryable):
            for row in batch.rows:
                await self._outcomes.failed(batch.connection.name, row, outcome)
        else:
            for row in batch.rows:
                await self.deliver_one(batch.connection, batch.client, row)

    async def deliver_one(self, connection: EhrConnection, client: SmartClient, row: outbox.Claimed) -> None:
        try:
            if row.kind == "referral":
                sent = await self._referrals.push(connection, client, row)
                if sent is None:
                    return
            else:
                _allowed, outgoing, holding, withheld = await self._prepare(connection, [row])
                if withheld:
                    await self._outcomes.withhold(withheld)
                    return
                await self._endpoints.wait_turn(connection.name)
                sent = await send(client, outgoing, holding, batched=self._settings.outbox_bundles)
        except Retryable as error:
            await self._outcomes.failed(connection.name, row, error)
            return
        except Permanent as error:
            await self._outcomes.dead(connection.name, row, error.reason)
            return
        except Exception as error:
            log.exception("delivery failed unexpectedly")
            await self._outcomes.dead(connection.name, row, f"internal error: {type(error).__name__}")
            return
        await self._outcomes.delivered(connection, [row], sent)
