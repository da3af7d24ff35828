"""Reads of the FHIR projection: current resources, versions, history pages (bytes, never models)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import Select, bindparam, exists, select
from sqlalchemy.ext.asyncio import AsyncConnection

from service.auth.boundary import version_visible, visible
from service.domain.errors import NotFound
from service.store import Database
from service.store.kept import fetch_all
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
    """``organization``: the reader's data boundary; what lies outside it is not found (the partner's
    read's statement, :func:`_bounded_current`, on ``conn``: inside its transaction)."""
    if organization is not None:
        statement = _bounded_current(resource_type)
        parameters = _bounded_values(program_id, resource_type, resource_id, organization)
        return _stored(await fetch_all(conn, statement, parameters, True), resource_type)
    t = fhir_resources.c
    query = select(*_SELECTED).where(
        t.program_id == program_id, t.resource_type == resource_type, t.resource_id == resource_id
    )
    return _stored((await conn.execute(query)).all(), resource_type)


_SELECTED = tuple(
    fhir_resources.c[name]
    for name in ("resource_type", "resource_id", "version_id", "last_updated", "body", "patient_id")
)


def _stored(rows: Sequence[Any], resource_type: str) -> StoredResource:
    """The one row a read by id found (columns :data:`_SELECTED`), or NotFound."""
    if not rows:
        raise NotFound(f"no {resource_type} with that id")
    row = rows[0]
    return StoredResource(
        row.resource_type, row.resource_id, row.version_id, row.last_updated, bytes(row.body), row.patient_id
    )


_CURRENT_SQL = (
    "SELECT resource_type, resource_id, version_id, last_updated, body, patient_id FROM fhir_resources "
    "WHERE program_id = ? AND resource_type = ? AND resource_id = ?"
)

_PG_CURRENT_SQL = (
    "SELECT resource_type, resource_id, version_id, last_updated, body, patient_id FROM fhir_resources "
    "WHERE program_id = $1 AND resource_type = $2 AND resource_id = $3"
)


@lru_cache(maxsize=64)  # one per served type
def _bounded_current(resource_type: str) -> Select[Any]:
    """The read by id inside an organisation's boundary: built once per type, every value a bind
    parameter (run on the driver: service.store.kept)."""
    t = fhir_resources.c
    inside = visible(bindparam("organization"), bindparam("today"), resource_type)
    return select(*_SELECTED).where(
        t.program_id == bindparam("program"),
        t.resource_type == bindparam("type"),
        t.resource_id == bindparam("id"),
        *([inside] if inside is not None else []),
    )


def _bounded_values(program_id: str, resource_type: str, resource_id: str, organization: str) -> dict[str, Any]:
    today = datetime.now(UTC).date()
    return {
        "program": program_id,
        "type": resource_type,
        "id": resource_id,
        "organization": organization,
        "today": today,
    }


async def _read_bounded(
    database: Database, program_id: str, resource_type: str, resource_id: str, organization: str
) -> StoredResource:
    """A partner's read by id: on PostgreSQL on the driver's sessions (a keyed statement, planned once),
    on SQLite through the read connection."""
    statement = _bounded_current(resource_type)
    parameters = _bounded_values(program_id, resource_type, resource_id, organization)
    async with database.read_lazily() as conn:  # on PostgreSQL the driver's session, no read connection
        rows = await fetch_all(conn, statement, parameters, True, None if database.is_sqlite else database.driver)
    return _stored(rows, resource_type)


async def read_current(
    database: Database, program_id: str, resource_type: str, resource_id: str, organization: str | None = None
) -> StoredResource:
    """The hot read: one keyed statement on a raw driver connection (no statement compilation, no result
    processing): for the program's own clients on PostgreSQL through asyncpg on the driver pool, on a
    SQLite file on the loop reader; for a partner's client (``organization``) a kept statement with
    the boundary (:func:`_read_bounded`)."""
    if organization is not None:
        return await _read_bounded(database, program_id, resource_type, resource_id, organization)
    if not database.is_sqlite:
        found = await database.fetch_row(_PG_CURRENT_SQL, program_id, resource_type, resource_id)
        if found is None:
            raise NotFound(f"no {resource_type} with that id")
        return StoredResource(found[0], found[1], found[2], found[3], found[4], found[5])
    if database.loop_reader is None:
        async with database.read() as conn:
            return await current(conn, program_id, resource_type, resource_id)
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


# --- the projection by source record (the exchange's reads) -------------------------------------------
@dataclass(frozen=True)
class SourcedResource:
    """A current resource with the record it comes from, its stored bytes and content hash."""

    source_kind: str
    source_id: str
    resource_type: str
    resource_id: str
    content_hash: str
    body: bytes


def _sourced(row: Any) -> SourcedResource:
    return SourcedResource(
        row.source_kind, row.source_id, row.resource_type, row.resource_id, row.content_hash, row.body
    )


def _sourced_columns() -> tuple[Any, ...]:
    t = fhir_resources.c
    return (t.program_id, t.source_kind, t.source_id, t.resource_type, t.resource_id, t.content_hash, t.body)


async def source(
    conn: AsyncConnection, program_id: str, resource_type: str, resource_id: str
) -> tuple[str, str] | None:
    """(source kind, source id) of the record a served resource comes from."""
    t = fhir_resources.c
    row = (
        await conn.execute(
            select(t.source_kind, t.source_id).where(
                t.program_id == program_id, t.resource_type == resource_type, t.resource_id == resource_id
            )
        )
    ).first()
    return None if row is None else (str(row.source_kind), str(row.source_id))


async def source_of(conn: AsyncConnection, program_id: str, resource_type: str, resource_id: str) -> str | None:
    """The domain id of the record a served resource comes from."""
    found = await source(conn, program_id, resource_type, resource_id)
    return None if found is None else found[1]


async def resources_of_sources(
    conn: AsyncConnection, program_id: str, sources: set[tuple[str, str]]
) -> list[SourcedResource]:
    """Every current resource mapped from the records ``(source kind, source id)`` of a program."""
    if not sources:
        return []
    t = fhir_resources.c
    rows = await conn.execute(  # by the (source_kind, source_id) index alone: the program is checked below
        select(*_sourced_columns()).where(
            t.source_kind.in_(sorted({kind for kind, _ in sources})),
            t.source_id.in_(sorted({record_id for _, record_id in sources})),
        )
    )
    return [
        _sourced(row) for row in rows if row.program_id == program_id and (row.source_kind, row.source_id) in sources
    ]


async def resources_by_reference(conn: AsyncConnection, program_id: str, references: set[str]) -> list[SourcedResource]:
    """The current resources of a program named by relative references (``Type/id``)."""
    if not references:
        return []
    t = fhir_resources.c
    rows = await conn.execute(
        select(*_sourced_columns()).where(
            t.program_id == program_id,
            t.resource_id.in_(sorted({r.split("/")[1] for r in references})),
            t.resource_type.in_(sorted({r.split("/")[0] for r in references})),
        )
    )
    return [_sourced(row) for row in rows if f"{row.resource_type}/{row.resource_id}" in references]


# --- lookups for inbound writes (search tokens) ------------------------------------------------------
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
