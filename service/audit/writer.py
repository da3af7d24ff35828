"""Writes audit records: one writer for every access, refusal, token, exchange and admin action.

``write(connection, record)`` appends the record in the caller's transaction: a change and its audit
record commit together or not at all. Call it as the **last** statement of the transaction: on
PostgreSQL it takes the chain's advisory lock, held until the commit.

``write(database, record)`` (reads, searches, refusals, tokens) returns once the record is committed,
so a read is recorded before its response is released. Records written this way by concurrent
requests are committed together (group commit: one transaction, one commit, one chain-lock round for
all the records that arrived while the previous batch was being written), which is what keeps
auditing every read cheap: on a SQLite file the batch is written by a plain driver connection, on
the event loop when the write lock is free (a worker thread waits for it otherwise); on PostgreSQL
by one statement, ``peerlink_audit_append`` (migration 0005), on a connection kept while batches
keep coming. A record that cannot be written raises :class:`AuditUnavailable` (503).

How a record is prepared and hashed: service.audit.record (and service.audit.chain, the canonical
form); the chain rule and the append in a transaction: service.audit.append; the group commit:
service.audit.batching, with its SQLite and PostgreSQL sinks.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection

from service.store import Database

from .append import append
from .batching import batcher
from .record import Action, AuditRecord, AuditUnavailable, Outcome, prepare, unavailable

__all__ = ["Action", "AuditRecord", "AuditUnavailable", "Outcome", "write", "write_many"]


async def write(target: Database | AsyncConnection, record: AuditRecord) -> None:
    """In the caller's transaction when given a connection (call it last), else committed on its own
    (batched with concurrent writers) before this returns. Raises :class:`AuditUnavailable`."""
    await write_many(target, [record])


async def write_many(target: Database | AsyncConnection, records: Sequence[AuditRecord]) -> None:
    """Several records at once (a transaction Bundle's entries, say), in order."""
    if isinstance(target, AsyncConnection):
        try:
            await append(target, records)
        except SQLAlchemyError as error:
            raise unavailable(error) from error
        return
    await batcher(target).submit([prepare(r) for r in records])
