"""The recording of a delivery's outcome: delivered (what the EHR now holds, an audit event),
withheld (no consent covers it now), retried later (backoff, the circuit breaker), or dead-lettered."""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import update

from service.audit import AuditRecord, write
from service.settings import Settings
from service.store import Database
from service.store.tables import ehr_connections

from . import connections, outbox
from .answers import BundleRefused, Refused, Retryable
from .connections import EhrConnection
from .holdings import remember
from .outgoing import Delivered
from .retry import Circuit, delay, expired


@dataclass
class Counters:
    """What this worker did, per connection (the queue's own state is in the database)."""

    delivered: int = 0
    retried: int = 0
    dead: int = 0
    withheld: int = 0
    polls: int = 0
    token_failures: int = 0
    bundle_refusals: int = 0


log = logging.getLogger("peerlink.exchange")


class Outcomes:
    def __init__(self, database: Database, settings: Settings, worker: str, circuit: Circuit) -> None:
        self._database = database
        self._settings = settings
        self._worker = worker
        self.circuit = circuit
        self.counters: defaultdict[str, Counters] = defaultdict(Counters)

    async def delivered(self, connection: EhrConnection, rows: list[outbox.Claimed], sent: Delivered) -> None:
        now = datetime.now(UTC)
        self.circuit.succeeded(connection.name)
        async with self._database.transaction() as conn:
            done = await outbox.finish(conn, [r.pk for r in rows], self._worker, "delivered", now, None)
            await remember(conn, connection.name, sent, now)
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

    async def withhold(self, rows: list[outbox.Claimed]) -> None:
        if not rows:
            return
        now = datetime.now(UTC)
        async with self._database.transaction() as conn:
            await outbox.finish(conn, [r.pk for r in rows], self._worker, "withheld", now, "no consent covers it now")
        self.counters[rows[0].connection].withheld += len(rows)

    async def failed(self, name: str, row: outbox.Claimed, error: Retryable) -> None:
        now = datetime.now(UTC)
        self.circuit.failed(name)
        counters = self.counters[name]
        if error.token:
            counters.token_failures += 1
        if expired(row.created_at, now, self._settings):
            reason = f"gave up after {self._settings.retry_horizon_seconds:g} s: {error.reason}"
            await self.dead(name, row, Refused(reason, error.status, error.outcome))
            return
        at = now + timedelta(seconds=delay(row.attempts, self._settings, error.retry_after))
        async with self._database.transaction() as conn:
            await outbox.retry_later(conn, row.pk, self._worker, at, error.reason)
            if error.token:
                c = ehr_connections.c
                await conn.execute(
                    update(ehr_connections).where(c.name == name).values(token_failures=c.token_failures + 1)
                )
        counters.retried += 1

    async def dead(self, name: str, row: outbox.Claimed, refusal: Refused | str) -> None:
        """Given up: the reason (status and issue codes, audited) and what the EHR answered (kept with
        the row only: its diagnostics may echo what it was sent)."""
        now = datetime.now(UTC)
        error = refusal if isinstance(refusal, Refused) else Refused(refusal)
        reason = error.reason
        async with self._database.transaction() as conn:
            status, outcome = error.status, error.outcome
            await outbox.finish(
                conn, [row.pk], self._worker, "dead", now, reason[:500], ehr_status=status, ehr_outcome=outcome
            )
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

    async def bundles_refused(self, name: str, refusal: BundleRefused) -> None:
        """The EHR refused a transaction Bundle: its batches go as single writes from now on."""
        async with self._database.transaction() as conn:
            news = await connections.refuse_bundles(conn, name, refusal.reason, datetime.now(UTC))
        if news:
            self.counters[name].bundle_refusals += 1
            log.warning("EHR %s refused a transaction Bundle (%s): single writes from now on", name, refusal.reason)
