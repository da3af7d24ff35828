"""Writes audit records. Callers describe what happened; never PHI beyond resource references."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from service.store import Database
from service.store.tables import audit_log

Action = Literal["C", "R", "U", "D", "E"]
Outcome = Literal["0", "4", "8", "12"]
"""FHIR AuditEvent.outcome: 0 success, 4 minor failure (refused), 8 serious failure, 12 major failure."""


@dataclass(frozen=True)
class AuditRecord:
    type: str
    """rest, security (tokens and refusals), admin."""
    subtype: str
    """read, vread, search, history, create, update, transaction, token, ..."""
    action: Action
    outcome: Outcome
    client_id: str | None = None
    organization: str | None = None
    address: str | None = None
    program_id: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    recorded: datetime = field(default_factory=lambda: datetime.now(UTC))


def _values(record: AuditRecord) -> dict[str, Any]:
    return {
        "recorded": record.recorded,
        "program_id": record.program_id,
        "type": record.type,
        "subtype": record.subtype,
        "action": record.action,
        "outcome": record.outcome,
        "client_id": record.client_id,
        "organization": record.organization,
        "address": record.address,
        "detail": record.detail,
    }


async def write(target: Database | AsyncConnection, record: AuditRecord) -> None:
    """In the caller's transaction when given a connection, else in a transaction of its own."""
    if isinstance(target, AsyncConnection):
        await target.execute(insert(audit_log).values(**_values(record)))
        return
    async with target.transaction() as conn:
        await conn.execute(insert(audit_log).values(**_values(record)))
