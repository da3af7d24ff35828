"""One page of a typed query over a :class:`Source` (the projection's resources, or the audit log):
the matches keyset-paged on the sort key and pk, their total, and the next cursor."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import ColumnElement, FromClause, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from service.store.kept import fetch_all

from .cursor import encode_cursor
from .query import After, Cursor, SearchQuery, Sort


class Source(Protocol):
    """What a search runs over: a table whose rows have a growing integer key, the conditions a
    query's criteria compile to on those rows, and their sort key."""

    @property
    def table(self) -> FromClause:
        """The rows searched (the total counts them)."""

    @property
    def pk(self) -> ColumnElement[int]:
        """The rows' growing key: the tie-breaker of every order, and the order without ``_sort``."""

    @property
    def columns(self) -> tuple[ColumnElement[Any], ...]:
        """What a page returns of each row; one of them is named ``pk`` (the key)."""

    def filters(self, query: SearchQuery) -> list[ColumnElement[bool]]:
        """The rows the query matches: the searcher's scope and every criterion (and, on a later
        page, the rows as of the cursor's snapshot when the source pins one)."""

    def sort_key(self, sort: Sort, cursor: Cursor | After | None) -> Any:
        """The current row's sort key (None: pk order), on a later page as of ``cursor``'s snapshot."""

    def snapshot(self) -> Any:
        """A scalar subquery: the point in time paging starts at, carried in the cursor."""


PAGE_PART = 0
"""With ``run_page``'s ``beside``: the ``part`` of the page's own rows."""


@dataclass(frozen=True)
class Page:
    total: int | None
    rows: list[Any]
    next_cursor: str | None
    beside: list[Any] = field(default_factory=list)
    """The rows a page's statement read beside the page's own (``run_page``'s ``beside``)."""


@dataclass
class Statements:
    """A page's statements: its rows (keyset-paged; rows carry ``pk``, ``snapshot`` and, when sorted on
    a key, ``k``) and the count of every match."""

    rows: Any
    count: Any
    keyed: bool
    kept: bool = False
    """Built once for every search of its shape (run on the driver, service.store.kept)."""
    counted: Any = None
    """A first page's rows with the count of every match beside them (a ``total`` column, computed
    once by the database): one statement instead of two, for a shape whose first pages have more
    matches than they hold."""
    overflowed: bool = False
    """Whether the last first page of this shape had more matches than it holds (then the next one
    runs ``counted``; the total is exact either way, only the number of statements differs)."""
    planned_once: bool = False
    """Driven by a criterion whose values never change the right plan (service.fhir.search.sql.driving):
    on PostgreSQL it runs on a session that plans it once, not once per execution."""


def statements(
    source: Source,
    query: SearchQuery,
    filters: list[ColumnElement[bool]],
    cursor: Cursor | After | None,
    limit: Any,
    kept: bool = False,
    candidates: Any = None,
    implied: Sequence[ColumnElement[bool]] = (),
) -> Statements:
    """The statements of a page of ``query`` after ``cursor`` (its values, or bind parameters standing
    for them), ``limit`` rows at most (the page and one more, or a bind parameter); ``kept``: built
    once for every search of its shape (with the first page's ``counted`` statement). ``candidates``
    (pk order only): a subquery of one column, the keys of the rows that may match, in page order; the
    page's rows are read in that order (``filters`` still checked on each), and ``implied`` are the
    conditions the candidates stand for (counted, not checked again on the page's rows)."""
    count = select(func.count().label("n")).select_from(source.table).where(*filters, *implied)
    key = source.sort_key(query.sort, cursor)
    snapshot = source.snapshot().label("snapshot")
    descending = query.sort.descending
    if candidates is not None and key is not None:
        raise ValueError("candidates are read in pk order only")
    if key is None:  # order by pk alone: no derived table needed (the common, cheapest case)
        pk = source.pk
        statement = select(*source.columns, snapshot).where(*filters)
        if candidates is not None:
            statement = statement.select_from(candidates.join(source.table, candidates.c[0] == pk))
        if cursor is not None:
            statement = statement.where(pk < cursor.pk if descending else pk > cursor.pk)
        statement = statement.order_by(pk.desc() if descending else pk.asc()).limit(limit)
        return Statements(statement, count, False, kept, _counted(statement, count, cursor) if kept else None)
    inner = select(*source.columns, key.label("k")).where(*filters).subquery()
    statement = select(inner, snapshot)
    if cursor is not None:
        after = inner.c.pk < cursor.pk if descending else inner.c.pk > cursor.pk
        beyond = inner.c.k < cursor.key if descending else inner.c.k > cursor.key
        statement = statement.where(or_(beyond, and_(inner.c.k == cursor.key, after)))
    order = [inner.c.k, inner.c.pk]
    statement = statement.order_by(*(c.desc() if descending else c.asc() for c in order)).limit(limit)
    return Statements(statement, count, True, kept, _counted(statement, count, cursor) if kept else None)


def _counted(statement: Any, count: Any, cursor: Cursor | After | None) -> Any:
    """The first page's statement with the total beside its rows (an uncorrelated subquery: counted
    once per statement), or None for a later page."""
    return None if cursor is not None else statement.add_columns(count.scalar_subquery().label("total"))


async def page(conn: AsyncConnection, source: Source, query: SearchQuery) -> Page:
    """The query's page: keyset-paged on the sort key and pk, with its total (when asked for)."""
    built = statements(source, query, source.filters(query), query.cursor, query.count + 1)
    return await run_page(conn, query, built, {})


async def run_page(
    conn: AsyncConnection,
    query: SearchQuery,
    built: Statements,
    parameters: dict[str, Any],
    planned_once: Any = None,
    beside: Callable[[Any], Any] | None = None,
) -> Page:
    """The page of ``query`` by its statements (``parameters``: the values of their bind parameters;
    ``planned_once``: see :func:`service.store.kept.fetch_all`, for statements built ``planned_once``).
    ``beside``: makes a page's statement read other rows beside the page's (a ``part`` column:
    :data:`PAGE_PART` the page's rows, any other value the others, returned as ``Page.beside``;
    service.fhir.search.combined)."""
    once = planned_once if built.planned_once else None
    others: list[Any] = []

    async def fetch(statement: Any) -> list[Any]:
        if beside is None:
            return await fetch_all(conn, statement, parameters, built.kept, once)
        rows = await fetch_all(conn, beside(statement), parameters, built.kept, once)
        others.extend(row for row in rows if row.part != PAGE_PART)
        return [row for row in rows if row.part == PAGE_PART]

    total = None
    cursor = query.cursor
    # A first page that holds every match is its own total (no count at all); a first page with more
    # after it counts them in a statement of its own, which reads the index alone (a window count over
    # the page's statement would carry every match's body through a sort: twice the page's time,
    # profiled). Count-only searches count the same way. A later page repeats the first page's total,
    # carried in the cursor (counting again cost as much as the page itself at a million, profiled).
    counted_with_page = query.total and cursor is None and not (query.summary_count or query.count == 0)
    if query.total and cursor is not None and cursor.total is not None:
        total = cursor.total
    elif query.total and not counted_with_page:
        total = await _count(conn, built, parameters, once)
    if query.summary_count or query.count == 0:
        return Page(total, [], None)
    if counted_with_page and built.overflowed and built.counted is not None:
        rows = await fetch(built.counted)
        total = rows[0].total if rows else 0
    else:
        rows = await fetch(built.rows)
        if counted_with_page:
            total = len(rows) if len(rows) <= query.count else await _count(conn, built, parameters, once)
    if counted_with_page:
        built.overflowed = len(rows) > query.count
    next_cursor = None
    if len(rows) > query.count:
        rows = rows[: query.count]
        last = rows[-1]
        next_cursor = encode_cursor(
            Cursor(
                query.sort.text,
                last.k if built.keyed else None,
                last.pk,
                cursor.snapshot if cursor is not None else last.snapshot,
                total,
            )
        )
    return Page(total, rows, next_cursor, others)


async def _count(conn: AsyncConnection, built: Statements, parameters: dict[str, Any], once: Any) -> int:
    return int((await fetch_all(conn, built.count, parameters, built.kept, once))[0].n)
