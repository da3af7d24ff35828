"""Reads of the FHIR projection: current resources, versions, history pages (bytes, never models)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncConnection

from service.auth.boundary import version_visible, visible
from service.domain.errors import NotFound
from service.store import Database
from service.store.repository import decode_cursor, encode_cursor
from service.store.tables import fhir_resources, fhir_search, fhir_versions


@dataclass(frozen=True)
class StoredResource:
    resource_type: str
    resource_id: str
    version_id: int
    last_updated: datetime
    body: bytes
    patient_id: str | None = None
    """The Patient the resource is about (current resources; for the audit record)."""


@dataclass(frozen=True)
class HistoryPage:
    entries: list[StoredResource]
    next_cursor: str | None


async def current(
    conn: AsyncConnection, program_id: str, resource_type: str, resource_id: str, organization: str | None = None
) -> StoredResource:
    """``organization``: the reader's data boundary; what lies outside it is not found."""
    t = fhir_resources.c
    query = select(t.resource_type, t.resource_id, t.version_id, t.last_updated, t.body, t.patient_id).where(
        t.program_id == program_id, t.resource_type == resource_type, t.resource_id == resource_id
    )
    if (inside := visible(organization)) is not None:
        query = query.where(inside)
    row = (await conn.execute(query)).first()
    if row is None:
        raise NotFound(f"no {resource_type} with that id")
    return StoredResource(
        row.resource_type, row.resource_id, row.version_id, row.last_updated, bytes(row.body), row.patient_id
    )


_CURRENT_SQL = (
    "SELECT resource_type, resource_id, version_id, last_updated, body, patient_id FROM fhir_resources "
    "WHERE program_id = ? AND resource_type = ? AND resource_id = ?"
)


async def read_current(
    database: Database, program_id: str, resource_type: str, resource_id: str, organization: str | None = None
) -> StoredResource:
    """The hot read. On a SQLite file, for the program's own clients: one keyed statement on a raw
    driver connection of the loop reader (no statement compilation, no result processing); else ``current``."""
    if database.loop_reader is None or organization is not None:
        async with database.read() as conn:
            return await current(conn, program_id, resource_type, resource_id, organization)
    raw = database.loop_reader.raw_connection()
    try:
        row = raw.cursor().execute(_CURRENT_SQL, (program_id, resource_type, resource_id)).fetchone()
    finally:
        raw.close()  # back to the pool
    if row is None:
        raise NotFound(f"no {resource_type} with that id")
    moment = datetime.fromisoformat(row[3]).replace(tzinfo=UTC)
    return StoredResource(row[0], row[1], row[2], moment, bytes(row[4]), row[5])


async def version(
    conn: AsyncConnection,
    program_id: str,
    resource_type: str,
    resource_id: str,
    version_id: int,
    organization: str | None = None,
) -> StoredResource:
    t = fhir_versions.c
    query = select(t.resource_type, t.resource_id, t.version_id, t.last_updated, t.body).where(
        t.program_id == program_id,
        t.resource_type == resource_type,
        t.resource_id == resource_id,
        t.version_id == version_id,
    )
    if (inside := version_visible(organization, fhir_versions)) is not None:
        query = query.where(inside)
    row = (await conn.execute(query)).first()
    if row is None:
        raise NotFound(f"no version {version_id} of that {resource_type}")
    return StoredResource(row.resource_type, row.resource_id, row.version_id, row.last_updated, bytes(row.body))


async def history(
    conn: AsyncConnection,
    program_id: str,
    resource_type: str,
    resource_id: str | None,
    *,
    since: datetime | None,
    count: int,
    cursor: str | None,
    organization: str | None = None,
) -> HistoryPage:
    """Newest first, keyset-paged on the version row (stable while new versions are written)."""
    t = fhir_versions.c
    query = (
        select(t.pk, t.resource_type, t.resource_id, t.version_id, t.last_updated, t.body)
        .where(t.program_id == program_id, t.resource_type == resource_type)
        .order_by(t.pk.desc())
        .limit(count + 1)
    )
    if resource_id is not None:
        query = query.where(t.resource_id == resource_id)
    if since is not None:
        query = query.where(t.last_updated >= since)
    if cursor is not None:
        query = query.where(t.pk < decode_cursor(cursor))
    if (inside := version_visible(organization, fhir_versions)) is not None:
        query = query.where(inside)
    rows = (await conn.execute(query)).all()
    more = len(rows) > count
    rows = rows[:count]
    if resource_id is not None and not rows and cursor is None:
        await current(conn, program_id, resource_type, resource_id, organization)  # 404: unknown or not visible
    entries = [
        StoredResource(r.resource_type, r.resource_id, r.version_id, r.last_updated, bytes(r.body)) for r in rows
    ]
    return HistoryPage(entries, encode_cursor(rows[-1].pk) if more else None)


# --- lookups for inbound writes (the projection's source index and search tokens) ------------------
async def source_id(conn: AsyncConnection, program_id: str, resource_type: str, resource_id: str) -> str | None:
    """The domain id of the record a served resource comes from."""
    t = fhir_resources.c
    row = (
        await conn.execute(
            select(t.source_id).where(
                t.program_id == program_id, t.resource_type == resource_type, t.resource_id == resource_id
            )
        )
    ).first()
    return None if row is None else str(row.source_id)


async def sources_with_token(
    conn: AsyncConnection, program_id: str, resource_type: str, param: str, token: str
) -> list[str]:
    """Domain ids (sorted) of the resources whose search parameter ``param`` has the token ``token``."""
    r, s = fhir_resources.c, fhir_search.c
    rows = await conn.execute(
        select(r.source_id)
        .join(fhir_search, s.resource_pk == r.pk)
        .where(s.program_id == program_id, s.resource_type == resource_type, s.param == param, s.token == token[:300])
        .distinct()
    )
    return sorted(str(row.source_id) for row in rows)


async def ids_matching_tokens(
    conn: AsyncConnection,
    program_id: str,
    resource_type: str,
    criteria: Sequence[tuple[str, Sequence[str]]],
    *,
    limit: int,
) -> list[str]:
    """Resource ids (oldest first, at most ``limit``) matching every (param, any of these tokens)
    criterion; the param ``_id`` matches the resource id itself."""
    r, s = fhir_resources.c, fhir_search.c
    statement = select(r.resource_id).where(r.program_id == program_id, r.resource_type == resource_type)
    for name, values in criteria:
        if name == "_id":
            statement = statement.where(r.resource_id.in_(values))
        else:
            statement = statement.where(exists().where(s.resource_pk == r.pk, s.param == name, s.token.in_(values)))
    rows = await conn.execute(statement.order_by(r.pk).limit(limit))
    return [str(row.resource_id) for row in rows]
