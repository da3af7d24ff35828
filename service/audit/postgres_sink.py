"""Audit batches on PostgreSQL: the whole batch in one statement, peerlink_audit_append (migration
0005), on the asyncpg connection."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .record import Prepared

PG_APPEND = (
    "SELECT peerlink_audit_append($1::bytea[], $2::bytea[], $3::bytea[], $4::timestamptz[], $5::varchar[], "
    "$6::varchar[], $7::varchar[], $8::varchar[], $9::varchar[], $10::varchar[], $11::varchar[], $12::varchar[], "
    "$13::text[], $14::varchar[], $15::varchar[], $16::int[])"
)


async def append_postgres(driver: Any, prepared: Sequence[Prepared]) -> None:
    """The whole batch in one statement, one round trip: peerlink_audit_append (migration 0005) takes
    the chain lock, reads the tail, joins each record's canonical parts with its seq and prev_hash,
    hashes them (the same SHA-256 over the same bytes as service.audit.chain.canonical) and inserts
    the records and their index rows; autocommit, so the lock is held for that statement only. On a
    loaded event loop every round trip waits a turn of the loop: one instead of six keeps the batch short."""
    columns: list[list[Any]] = [[] for _ in range(16)]
    for position, item in enumerate(prepared, start=1):
        v = item.values
        values = (
            *item.parts,
            v["recorded"],
            v["program_id"],
            v["type"],
            v["subtype"],
            v["action"],
            v["outcome"],
            v["client_id"],
            v["organization"],
            v["address"],
            item.detail_json.decode(),
        )
        for column, value in zip(columns, values, strict=False):
            column.append(value)
        for kind, ref in item.entities:
            columns[13].append(kind)
            columns[14].append(ref)
            columns[15].append(position)
    await driver.fetchval(PG_APPEND, *columns)
