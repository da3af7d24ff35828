"""Delivering claimed changes to their EHR: consent re-checked, resources gathered (``collect``),
written so that a retry never duplicates (``send``), and each outcome recorded (``outcomes``). A
batch of one connection's pushes goes in one go; a refused batch is split to find the change the
EHR refuses, and referral updates go one by one onto the clinic's Task (``referral_push``).

An EHR that refuses transaction Bundles (``send.Route``) gets single writes: the batch that met the
refusal goes on one by one, and the connection remembers it (``connections.refuse_bundles``), so its
next batches go as single writes without trying a Bundle first, until an operator clears it."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from dataclasses import dataclass

from service.records.outbox_rows import may_send
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
from .send import Route, send
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
    route: Route

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
        self._refused: dict[str, object] = {}
        """Connection -> its settings' version (updated_at) when this worker met a refusal of a Bundle:
        a connection loaded before the refusal was recorded goes without Bundles too."""

    def route(self, connection: EhrConnection) -> Route:
        """In a transaction Bundle, unless switched off, or the EHR refused one (recorded, or met by
        this worker since the connection was loaded)."""
        name = connection.name
        met = name in self._refused and self._refused[name] == connection.updated_at
        return Route(self._settings.outbox_bundles and connection.bundles_refused_at is None and not met)

    def _met(self, connection: EhrConnection, route: Route) -> None:
        if route.refused is not None:
            self._refused[connection.name] = connection.updated_at

    async def _note(self, connection: EhrConnection, route: Route) -> None:
        """A refusal of a Bundle met on the way is recorded on the connection."""
        if route.refused is not None:
            self._met(connection, route)
            await self._outcomes.bundles_refused(connection.name, route.refused)

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
            # a note is asked as itself: a SUD counseling note needs its own category, not notes'
            for row in [r for r in rows if r.kind == "note"]:
                if await may_send(conn, program, connection, row.kind, row.record_id, row.participant_id):
                    may.add(row.pk)
                else:
                    may.discard(row.pk)
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
        route = self.route(batch.connection)
        sending = send(batch.client, batch.outgoing, holding, route)
        return Flight(batch, asyncio.ensure_future(sending), route)

    async def answer(self, flight: Flight) -> Outcome:
        """What a batch's flight came to; a refusal of its Bundle counts for the batches launched next."""
        try:
            return await flight.answer
        except Exception as error:  # recorded per row by record
            if not isinstance(error, (Permanent, Retryable)):
                log.exception("batch delivery failed unexpectedly")
            return error
        finally:
            self._met(flight.batch.connection, flight.route)

    async def record(self, flight: Flight, outcome: Outcome) -> None:
        """A batch's outcome: delivered; retried later (the EHR is unreachable or busy); or, refused,
        split to find the change the EHR refuses while the others still go."""
        batch = flight.batch
        await self._note(batch.connection, flight.route)
        if isinstance(outcome, Delivered):
            await self._outcomes.delivered(batch.connection, batch.rows, outcome)
        elif isinstance(outcome, Retryable):
            for row in batch.rows:
                await self._outcomes.failed(batch.connection.name, row, outcome)
        else:
            for row in batch.rows:
                await self.deliver_one(batch.connection, batch.client, row)

    async def deliver_one(self, connection: EhrConnection, client: SmartClient, row: outbox.Claimed) -> None:
        route = self.route(connection)
        try:
            sent = await self._send_one(connection, client, row, route)
        except Retryable as error:
            await self._outcomes.failed(connection.name, row, error)
        except Permanent as error:
            await self._outcomes.dead(connection.name, row, error)
        except Exception as error:
            log.exception("delivery failed unexpectedly")
            await self._outcomes.dead(connection.name, row, f"internal error: {type(error).__name__}")
        else:
            if sent is not None:
                await self._outcomes.delivered(connection, [row], sent)
        await self._note(connection, route)

    async def _send_one(
        self, connection: EhrConnection, client: SmartClient, row: outbox.Claimed, route: Route
    ) -> Delivered | None:
        """What one change wrote; None when it was withheld."""
        if row.kind == "referral":
            return await self._referrals.push(connection, client, row, route)
        _allowed, outgoing, holding, withheld = await self._prepare(connection, [row])
        if withheld:
            await self._outcomes.withhold(withheld)
            return None
        await self._endpoints.wait_turn(connection.name)
        return await send(client, outgoing, holding, route)
