"""Running a typed query over the projection: the page (:mod:`.paging`), its total, the next cursor,
and the ``_include``/``_revinclude`` resources, all inside the searcher's data boundary."""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import ColumnElement, and_, bindparam, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from service.auth.boundary import visible
from service.store.tables import fhir_resources, fhir_search, fhir_versions

from .paging import Statements, run_page, statements
from .query import After, Cursor, Found, SearchQuery, SearchResult, Sort
from .sql import Compiler, R, Shape
from .values import TYPED_REFERENCE

CANONICAL_TYPES = frozenset({"Questionnaire"})
"""Types served here that others reference by canonical URL rather than by Type/id."""


def _found(row: Any) -> Found:
    return Found(row.pk, row.resource_type, row.resource_id, bytes(row.body), row.patient_id)


class Projection:
    """The :class:`Source` of the projection: one program's ``fhir_resources`` of the searched type,
    inside the searcher's data boundary; criteria are EXISTS on ``fhir_search`` (:mod:`.sql`).
    ``program_id`` and ``organization`` may be bind parameters standing for them (``today`` then too)."""

    table = fhir_resources
    pk = R.pk
    columns = (R.pk, R.resource_type, R.resource_id, R.body, R.patient_id)

    def __init__(self, program_id: Any, resource_type: str, organization: Any, today: Any = None) -> None:
        self.program_id = program_id
        self.compiler = Compiler(program_id, resource_type)
        self.inside = visible(organization, today)

    def scope(self, resource_type: Any) -> list[ColumnElement[bool]]:
        """The program's resources of the type, inside the boundary."""
        return [
            R.program_id == self.program_id,
            R.resource_type == resource_type,
            *([self.inside] if self.inside is not None else []),
        ]

    def filters(self, query: SearchQuery) -> list[ColumnElement[bool]]:
        return [*self.scope(query.resource_type), *self.compiler.criteria(query.criteria)]

    def sort_key(self, sort: Sort, cursor: Cursor | After | None) -> Any:
        return self.compiler.sort_key(sort, cursor)

    def snapshot(self) -> Any:
        return _SNAPSHOT


_SNAPSHOT = select(func.coalesce(func.max(fhir_versions.c.pk), 0)).scalar_subquery()
"""Built once: SQLAlchemy's function constructs cost more than the rest of a page's statement."""

KEPT_STATEMENTS = 512
"""Statements kept by shape (a bounded number: shapes come from requests)."""
_kept: dict[Hashable, Statements] = {}


def prepare(program_id: str, query: SearchQuery, organization: str | None) -> tuple[Statements, dict[str, Any]]:
    """The page's statements for the query's shape (built once per shape, with bind parameters for
    every value: the program, the boundary's organization and day, the criteria's values, the cursor
    and the limit) and this query's values for them."""
    shapes, values = Compiler(program_id, query.resource_type).plan(query.criteria)
    cursor = query.cursor
    key = (query.resource_type, shapes, organization is None, query.sort, cursor is None)
    parameters: dict[str, Any] = {"program": program_id, "type": query.resource_type, "limit": query.count + 1}
    parameters.update((f"v{i}", value) for i, value in enumerate(values))
    if organization is not None:
        parameters.update(organization=organization, today=datetime.now(UTC).date())
    if cursor is not None:
        parameters.update(cursor_key=cursor.key, cursor_pk=cursor.pk, cursor_snapshot=cursor.snapshot)
    built = _kept.get(key)
    if built is None:
        built = _kept[key] = _build(query, shapes, len(values), organization is not None)
        if len(_kept) > KEPT_STATEMENTS:
            del _kept[next(iter(_kept))]
    return built, parameters


def _build(query: SearchQuery, shapes: Shape, values: int, bounded: bool) -> Statements:
    source = Projection(
        bindparam("program"),
        query.resource_type,
        bindparam("organization") if bounded else None,
        bindparam("today") if bounded else None,
    )
    taken: Iterator[Any] = (bindparam(f"v{i}") for i in range(values))
    filters = [*source.scope(bindparam("type")), *source.compiler.build(shapes, taken)]
    if next(taken, None) is not None:
        raise AssertionError("a search plan's values and its SQL disagree")  # never: a bug in .sql
    cursor = None
    if query.cursor is not None:
        cursor = After(bindparam("cursor_key"), bindparam("cursor_pk"), bindparam("cursor_snapshot"))
    return statements(source, query, filters, cursor, bindparam("limit"))


async def run(
    conn: AsyncConnection, program_id: str, query: SearchQuery, organization: str | None = None
) -> SearchResult:
    """``organization``: the searcher's data boundary; matches and includes outside it do not exist."""
    found = await run_page(conn, query, *prepare(program_id, query, organization))
    matches = [_found(row) for row in found.rows]
    inside = visible(organization) if organization is not None and (query.includes or query.revincludes) else None
    included = await _included(conn, program_id, query, matches, inside)
    return SearchResult(found.total, matches, included, found.next_cursor)


def _canonicals(matches: list[Found]) -> list[str]:
    """``url|version`` of the matches that are canonical resources (a Questionnaire), which is how
    what points at them refers to them (``QuestionnaireResponse.questionnaire``)."""
    found = []
    for match in matches:
        if match.resource_type in CANONICAL_TYPES:
            resource = orjson.loads(match.body)
            if resource.get("url") and resource.get("version"):
                found.append(f"{resource['url']}|{resource['version']}")
    return found


def _indexed(program_id: str, param: str, token: str) -> ColumnElement[bool]:
    s = fhir_search.alias()
    return exists().where(s.c.resource_pk == R.pk, s.c.program_id == program_id, s.c.param == param, s.c.token == token)


async def _canonical_targets(
    conn: AsyncConnection, program_id: str, canonicals: set[str], target_type: str | None, boundary: list[Any]
) -> list[Found]:
    """The resources canonical references (``url|version``, or ``url`` for every version) name, found
    by their ``url`` and ``version`` index rows (a QuestionnaireResponse's Questionnaire)."""
    versioned = {c.split("|", 1)[0] for c in canonicals if "|" in c}
    conditions = []
    for canonical in sorted(canonicals):
        url, _, version = canonical.partition("|")
        if not version and url in versioned:
            continue  # the url-only index row of a versioned canonical
        condition = _indexed(program_id, "url", url)
        conditions.append(and_(condition, _indexed(program_id, "version", version)) if version else condition)
    if not conditions:
        return []
    typed = [R.resource_type == target_type] if target_type else []
    rows = await conn.execute(
        select(R.pk, R.resource_type, R.resource_id, R.body, R.patient_id)
        .where(R.program_id == program_id, or_(*conditions), *typed, *boundary)
        .order_by(R.pk)
    )
    return [_found(row) for row in rows]


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
        canonicals: set[str] = set()
        for token in tokens:
            typed = TYPED_REFERENCE.match(token or "")
            if typed and (include.target_type is None or typed.group(1) == include.target_type):
                wanted.setdefault(typed.group(1), set()).add(typed.group(2))
            elif token and "://" in token:
                canonicals.add(token)
        found += await _canonical_targets(conn, program_id, canonicals, include.target_type, boundary)
        if not wanted:
            continue
        targets = or_(*(and_(R.resource_type == t, R.resource_id.in_(sorted(ids))) for t, ids in wanted.items()))
        rows = await conn.execute(select(*columns).where(R.program_id == program_id, targets, *boundary).order_by(R.pk))
        found += [_found(row) for row in rows]
    references = [f"{m.resource_type}/{m.resource_id}" for m in matches] + _canonicals(matches)
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
