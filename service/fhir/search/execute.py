"""Running a typed query over the projection: the page (:mod:`.paging`), its total, the next cursor,
and the ``_include``/``_revinclude`` resources (:mod:`.includes`), all inside the searcher's data
boundary."""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from datetime import UTC, datetime
from functools import partial
from typing import Any

from sqlalchemy import ColumnElement, String, bindparam, func, literal_column, select
from sqlalchemy.ext.asyncio import AsyncConnection

from service.auth.boundary import visible
from service.store.tables import fhir_resources, fhir_versions

from . import combined
from .combined import together
from .includes import found, included, unique
from .paging import Statements, run_page, statements
from .query import After, Cursor, SearchQuery, SearchResult, Sort
from .sql import MAX_CANDIDATES_TOTAL, Compiler, R, Shape, candidate, driving


class Projection:
    """The :class:`Source` of the projection: one program's ``fhir_resources`` of the searched type,
    inside the searcher's data boundary; criteria are EXISTS on ``fhir_search`` (:mod:`.sql`).
    ``program_id`` and ``organization`` may be bind parameters standing for them (``today`` then too)."""

    table = fhir_resources
    pk = R.pk
    columns = (R.pk, R.resource_type, R.resource_id, R.body, R.patient_id)

    def __init__(
        self,
        program_id: Any,
        resource_type: str,
        organization: Any,
        today: Any = None,
        after: Any = None,
        descending: bool = False,
    ) -> None:
        self.program_id = program_id
        self.compiler = Compiler(program_id, resource_type, after, descending)  # after: see Compiler
        self.inside = visible(organization, today, resource_type)

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


def prepare(
    program_id: str, query: SearchQuery, organization: str | None, postgres: bool = False
) -> tuple[Statements, dict[str, Any]]:
    """The page's statements for the query's shape (built once per shape, with bind parameters for
    every value: the program, the boundary's organization and day, the criteria's values, the cursor
    and the limit) and this query's values for them. ``postgres``: a shape with a driving criterion
    (:func:`.sql.driving`) is built to be planned once (``Statements.planned_once``)."""
    shapes, values = Compiler(program_id, query.resource_type).plan(query.criteria)
    driver = driving(shapes) if postgres else None
    # the program's own client asking for every resource of a type: the program and the type are the
    # statement's own constants (one statement per program), so that a plan made once knows how many of
    # the program's resources are of the type (a partner's boundary is left to per-value plans)
    whole_type = program_id if postgres and not shapes and organization is None else None
    cursor = query.cursor
    # the criterion's matches read first, in pk order (.sql.candidate), by a one-criterion search's first
    # page that counts every match anyway (reading them costs less than counting them), or by a later page
    # of few matches
    if cursor is None:
        read_first = query.total and not query.summary_count and query.count > 0
    else:
        read_first = cursor.total is not None and cursor.total <= MAX_CANDIDATES_TOTAL
    candidates = candidate(shapes) if read_first and driver is None and query.sort.key is None else None
    # a later page's plan is fixed by the candidates' shape: on PostgreSQL it is planned once (a first
    # page's count is planned for its values: how many matches a date range has is not known)
    later_once = candidates is not None and postgres and cursor is not None
    key = (
        query.resource_type,
        shapes,
        organization is None,
        query.sort,
        cursor is None,
        driver,
        whole_type,
        candidates is not None,
        later_once,
    )
    parameters: dict[str, Any] = {"program": program_id, "type": query.resource_type, "limit": query.count + 1}
    parameters.update((f"v{i}", value) for i, value in enumerate(values))
    if organization is not None:
        parameters.update(organization=organization, today=datetime.now(UTC).date())
    if cursor is not None:
        parameters.update(cursor_key=cursor.key, cursor_pk=cursor.pk, cursor_snapshot=cursor.snapshot)
    built = _kept.get(key)
    if built is None:
        bounded = organization is not None
        built = _kept[key] = _build(query, shapes, len(values), bounded, driver, whole_type, candidates)
        built.planned_once = built.planned_once or later_once
        if len(_kept) > KEPT_STATEMENTS:
            del _kept[next(iter(_kept))]
    return built, parameters


def _build(
    query: SearchQuery,
    shapes: Shape,
    values: int,
    bounded: bool,
    driver: int | None,
    whole_type: str | None,
    candidates: Shape | None = None,
) -> Statements:
    """``whole_type``: a search with no criteria of this program's resources of the type: the program and
    the type written into the SQL, and the statement planned once (``Statements.planned_once``).
    ``candidates``: the one criterion whose matches the page's rows are read from, in pk order
    (.sql.candidate)."""
    later_by_pk = query.cursor is not None and query.sort.key is None
    program: Any = bindparam("program") if whole_type is None else _constant(whole_type)
    resource_type: Any = bindparam("type") if whole_type is None else _constant(query.resource_type)
    source = Projection(
        program,
        query.resource_type,
        bindparam("organization") if bounded else None,
        bindparam("today") if bounded else None,
        bindparam("cursor_pk") if later_by_pk else None,
        query.sort.descending,
    )
    taken: Iterator[Any] = (bindparam(f"v{i}") for i in range(values))
    scope = source.scope(resource_type)
    criteria = source.compiler.build(shapes, taken, driver)
    if next(taken, None) is not None:
        raise AssertionError("a search plan's values and its SQL disagree")  # never: a bug in .sql
    cursor = None
    if query.cursor is not None:
        cursor = After(bindparam("cursor_key"), bindparam("cursor_pk"), bindparam("cursor_snapshot"))
    limit: Any = bindparam("limit")
    if candidates is not None:
        keys = source.compiler.candidates(candidates, (bindparam(f"v{i}") for i in range(values)))
        built = statements(source, query, scope, cursor, limit, kept=True, candidates=keys, implied=criteria)
    else:
        built = statements(source, query, [*scope, *criteria], cursor, limit, kept=True)
    built.planned_once = driver is not None or whole_type is not None
    return built


def _constant(text: str) -> ColumnElement[Any]:
    """A string written into the SQL as a literal (standard SQL quoting: a quote doubled)."""
    return literal_column("'" + text.replace("'", "''") + "'", String())


async def run(
    conn: AsyncConnection,
    program_id: str,
    query: SearchQuery,
    organization: str | None = None,
    planned_once: Any = None,
) -> SearchResult:
    """``organization``: the searcher's data boundary; matches and includes outside it do not exist.
    ``planned_once``: on PostgreSQL, connections whose sessions plan a statement once
    (``Database.driver``), for the searches driven by a criterion that allows it."""
    built, parameters = prepare(program_id, query, organization, postgres=planned_once is not None)
    # a page planned once reads its one include in the same statement (.combined)
    include = together(query) if built.planned_once and planned_once is not None else None
    beside = None
    if include is not None:
        parameters.update(combined.parameters(query, include))
        bounded, descending = organization is not None, query.sort.descending
        beside = partial(combined.statement, keyed=built.keyed, descending=descending, include=include, bounded=bounded)
    page = await run_page(conn, query, built, parameters, planned_once, beside)
    matches = [found(row) for row in page.rows]
    if include is not None:
        others = unique(matches, [found(row) for row in page.beside])
    else:
        others = await included(conn, program_id, query, matches, organization, planned_once)
    return SearchResult(page.total, matches, others, page.next_cursor)
