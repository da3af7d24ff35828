"""Running a typed query: the page (keyset-paged on the sort key and pk), its total, the next cursor,
and the ``_include``/``_revinclude`` resources, all inside the searcher's data boundary."""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from service.auth.boundary import visible
from service.store.tables import fhir_resources, fhir_search, fhir_versions

from .cursor import encode_cursor
from .query import Cursor, Found, SearchQuery, SearchResult
from .sql import Compiler, R
from .values import TYPED_REFERENCE


def _found(row: Any) -> Found:
    return Found(row.pk, row.resource_type, row.resource_id, bytes(row.body), row.patient_id)


async def run(
    conn: AsyncConnection, program_id: str, query: SearchQuery, organization: str | None = None
) -> SearchResult:
    """``organization``: the searcher's data boundary; matches and includes outside it do not exist."""
    compiler = Compiler(program_id, query.resource_type)
    inside = visible(organization)
    filters = [
        R.program_id == program_id,
        R.resource_type == query.resource_type,
        *(compiler.criterion(c) for c in query.criteria),
        *([inside] if inside is not None else []),
    ]
    total = None
    # The first page counts its matches in the same statement (a window over the unlimited rows);
    # later pages, and count-only searches, ask separately.
    counted_with_page = query.total and query.cursor is None and not (query.summary_count or query.count == 0)
    if query.total and not counted_with_page:
        total = (await conn.execute(select(func.count()).select_from(fhir_resources).where(*filters))).scalar_one()
    if query.summary_count or query.count == 0:
        return SearchResult(total, [], [], None)

    key = compiler.sort_key(query.sort, query.cursor)
    snapshot = select(func.coalesce(func.max(fhir_versions.c.pk), 0)).scalar_subquery().label("snapshot")
    cursor, descending = query.cursor, query.sort.descending
    if key is None:  # order by pk alone: no derived table needed (the common, cheapest case)
        page = select(R.pk, R.resource_type, R.resource_id, R.body, R.patient_id, snapshot).where(*filters)
        if cursor is not None:
            page = page.where(R.pk < cursor.pk if descending else R.pk > cursor.pk)
        page = page.order_by(R.pk.desc() if descending else R.pk.asc()).limit(query.count + 1)
    else:
        inner = (
            select(R.pk, R.resource_type, R.resource_id, R.body, R.patient_id, key.label("k"))
            .where(*filters)
            .subquery()
        )
        page = select(inner, snapshot)
        if cursor is not None:
            after = inner.c.pk < cursor.pk if descending else inner.c.pk > cursor.pk
            beyond = inner.c.k < cursor.key if descending else inner.c.k > cursor.key
            page = page.where(or_(beyond, and_(inner.c.k == cursor.key, after)))
        order = [inner.c.k, inner.c.pk]
        page = page.order_by(*(c.desc() if descending else c.asc() for c in order)).limit(query.count + 1)
    if counted_with_page:
        page = page.add_columns(func.count().over().label("total"))
    rows = (await conn.execute(page)).all()
    if counted_with_page:
        total = rows[0].total if rows else 0
    next_cursor = None
    if len(rows) > query.count:
        rows = rows[: query.count]
        last = rows[-1]
        next_cursor = encode_cursor(
            Cursor(
                query.sort.text,
                last.k if key is not None else None,
                last.pk,
                cursor.snapshot if cursor is not None else last.snapshot,
            )
        )
    matches = [_found(row) for row in rows]
    included = await _included(conn, program_id, query, matches, inside)
    return SearchResult(total, matches, included, next_cursor)


async def _included(
    conn: AsyncConnection, program_id: str, query: SearchQuery, matches: list[Found], inside: Any
) -> list[Found]:
    if not matches or not (query.includes or query.revincludes):
        return []
    boundary = [inside] if inside is not None else []
    columns = (R.pk, R.resource_type, R.resource_id, R.body, R.patient_id)
    seen = {(m.resource_type, m.resource_id) for m in matches}
    found: list[Found] = []
    s = fhir_search.c
    pks = [m.pk for m in matches]
    for include in query.includes:
        tokens = (
            await conn.execute(
                select(s.token)
                .distinct()
                .where(
                    s.resource_pk.in_(pks),
                    s.program_id == program_id,
                    s.resource_type == include.source_type,
                    s.param == include.param,
                )
            )
        ).scalars()
        wanted: dict[str, set[str]] = {}
        for token in tokens:
            typed = TYPED_REFERENCE.match(token or "")
            if typed and (include.target_type is None or typed.group(1) == include.target_type):
                wanted.setdefault(typed.group(1), set()).add(typed.group(2))
        if not wanted:
            continue
        targets = or_(*(and_(R.resource_type == t, R.resource_id.in_(sorted(ids))) for t, ids in wanted.items()))
        rows = await conn.execute(select(*columns).where(R.program_id == program_id, targets, *boundary).order_by(R.pk))
        found += [_found(row) for row in rows]
    references = [f"{m.resource_type}/{m.resource_id}" for m in matches]
    for include in query.revincludes:
        if include.target_type not in (None, query.resource_type):
            continue
        t = fhir_search.alias()
        pointing = exists().where(
            t.c.resource_pk == R.pk,
            t.c.program_id == program_id,
            t.c.resource_type == include.source_type,
            t.c.param == include.param,
            t.c.token.in_(references),
        )
        rows = await conn.execute(
            select(*columns)
            .where(R.program_id == program_id, R.resource_type == include.source_type, pointing, *boundary)
            .order_by(R.pk)
        )
        found += [_found(row) for row in rows]
    unique: list[Found] = []
    for item in found:
        if (item.resource_type, item.resource_id) not in seen:
            seen.add((item.resource_type, item.resource_id))
            unique.append(item)
    return unique
