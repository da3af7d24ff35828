"""What each EHR holds of ours (``ehr_resources``): our reference -> the EHR's id and the content
hash last sent, read before a delivery (unchanged content is not sent again) and written after it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from service.store.tables import ehr_resources

from .outgoing import Delivered


async def held(conn: AsyncConnection, connection: str, references: list[str]) -> dict[str, tuple[str, str]]:
    """our reference -> (EHR id, content hash) of what the EHR was last sent."""
    e = ehr_resources.c
    if not references:
        return {}
    types = sorted({r.split("/")[0] for r in references})
    ids = sorted({r.split("/")[1] for r in references})
    rows = await conn.execute(
        select(e.resource_type, e.resource_id, e.ehr_id, e.content_hash).where(
            e.connection == connection, e.resource_type.in_(types), e.resource_id.in_(ids)
        )
    )
    wanted = set(references)
    return {
        f"{r.resource_type}/{r.resource_id}": (r.ehr_id, r.content_hash)
        for r in rows
        if f"{r.resource_type}/{r.resource_id}" in wanted
    }


async def remember(conn: AsyncConnection, connection: str, delivered: Delivered, now: datetime) -> None:
    """What the EHR now holds, in one statement (an upsert per resource, executed as a batch)."""
    if not delivered.written:
        return
    dialect = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    statement = dialect(ehr_resources)
    statement = statement.on_conflict_do_update(
        index_elements=["connection", "resource_type", "resource_id"],
        set_={
            "ehr_id": statement.excluded.ehr_id,
            "content_hash": statement.excluded.content_hash,
            "delivered_at": statement.excluded.delivered_at,
        },
    )
    rows = [
        {
            "connection": connection,
            "resource_type": reference.split("/")[0],
            "resource_id": reference.split("/")[1],
            "ehr_id": ehr_id,
            "content_hash": content_hash,
            "delivered_at": now,
        }
        for reference, (ehr_id, content_hash) in delivered.written.items()
    ]
    await conn.execute(statement, rows)
