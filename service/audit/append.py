"""Appending to the chain through SQLAlchemy, in the caller's transaction.

Chain rule (the same for every writer, process and replica): inside the transaction, take the chain
lock (``pg_advisory_xact_lock(CHAIN_LOCK)`` on PostgreSQL; on SQLite every write transaction
already holds the database's write lock, BEGIN IMMEDIATE), then read the tail (the record with the
highest seq; with none, the newest archive anchor; with none, the genesis value), and append
seq + 1, seq + 2, ... each holding the hash of the one before. So concurrent writers build one chain.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import insert, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from service.store.tables import audit_anchors, audit_entities, audit_log

from .chain import GENESIS
from .record import AuditRecord, Prepared, chain_hashes, prepare

CHAIN_LOCK = 0x5045_4552_4C4B_4155  # "PEERLKAU": the PostgreSQL advisory lock of the audit chain


async def lock_chain(conn: AsyncConnection) -> None:
    """Serialize appends to the chain (PostgreSQL; SQLite writers hold the database's write lock)."""
    if conn.dialect.name == "postgresql":
        await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": CHAIN_LOCK})


async def tail(conn: AsyncConnection) -> tuple[int, str]:
    """(seq, hash) the next record follows: the newest record, else the newest anchor, else genesis."""
    newest = select(audit_log.c.seq, audit_log.c.hash).order_by(audit_log.c.seq.desc()).limit(1)
    last = (await conn.execute(newest)).first()
    if last is not None:
        return int(last.seq), str(last.hash)
    anchored = select(audit_anchors.c.last_seq, audit_anchors.c.hash).order_by(audit_anchors.c.last_seq.desc())
    anchor = (await conn.execute(anchored.limit(1))).first()
    if anchor is not None:
        return int(anchor.last_seq), str(anchor.hash)
    return 0, GENESIS


async def append_locked(conn: AsyncConnection, prepared: Sequence[Prepared]) -> int:
    """Append prepared records after the tail; the caller holds the chain lock. Returns the last seq."""
    seq, prev = await tail(conn)
    rows: list[dict[str, Any]] = []
    index: list[dict[str, Any]] = []
    for item, number, before, digest in chain_hashes(prepared, seq, prev):
        rows.append({**item.values, "seq": number, "prev_hash": before, "hash": digest})
        index.extend({"seq": number, "kind": kind, "ref": ref} for kind, ref in item.entities)
        seq = number
    await conn.execute(insert(audit_log), rows)
    if index:
        await conn.execute(insert(audit_entities), index)
    return seq


async def append(conn: AsyncConnection, records: Sequence[AuditRecord]) -> int:
    """Append records in the caller's transaction; returns the last seq written."""
    prepared = [prepare(r) for r in records]
    await lock_chain(conn)
    return await append_locked(conn, prepared)
