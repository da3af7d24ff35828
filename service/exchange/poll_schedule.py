"""When and for whom a worker polls EHRs for referrals: every enabled polling connection whose
interval has passed, one worker taking each poll; each poll audited."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import or_, update

from service.audit import AuditRecord, write
from service.store import Database
from service.store.tables import ehr_connections

from . import connections, polling
from .answers import Permanent, Retryable
from .connections import EhrConnection, KeyUnavailable
from .endpoints import Endpoints
from .outcomes import Outcomes

log = logging.getLogger("peerlink.exchange")


class PollSchedule:
    def __init__(self, database: Database, endpoints: Endpoints, outcomes: Outcomes) -> None:
        self._database = database
        self._endpoints = endpoints
        self._outcomes = outcomes

    async def poll_due(self, force: str | None = None) -> int:
        """Poll every connection whose interval has passed (one worker takes each poll)."""
        now = datetime.now(UTC)
        async with self._database.read() as conn:
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
        async with self._database.transaction() as conn:
            taken = await conn.execute(update(ehr_connections).where(*condition).values(polled_at=now))
        return bool(taken.rowcount)

    async def poll_one(self, connection: EhrConnection) -> int:
        try:
            connection, client = await self._endpoints.client(connection.name)
        except KeyUnavailable as error:
            log.warning("poll skipped: %s", error)
            return 0
        async with self._database.read() as conn:
            program = await self._endpoints.program(conn, connection.program_id)
        outcome = "0"
        try:
            result = await polling.poll(self._database, program, connection, client)
        except (Retryable, Permanent) as error:
            result, outcome = polling.PollResult(refused=[error.reason]), "8"
        self._outcomes.counters[connection.name].polls += 1
        await write(
            self._database,
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
