"""A typed query's criteria and sort key as SQL over the projection: every criterion is an EXISTS on
``fhir_search`` correlated to ``fhir_resources.pk`` (or a condition on the resource row for ``_id``
and ``_lastUpdated``).

Criteria are first *planned*: each AND-ed condition becomes a shape (nested tuples naming what is
compared, never a value) and the values it compares, in the order its SQL takes them. The SQL is then
*built* from the shapes alone, taking each value from an iterator in that order: the request's values
themselves (:meth:`Compiler.criteria`), or bind parameters named by position, so that one statement
per shape serves every search of that shape (:mod:`.statements`; building a statement cost more than
running it, profiled)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, false, func, literal, not_, or_, select, true

from service.store.tables import fhir_resources, fhir_search, fhir_versions
from service.store.types import UTCDateTime

from .query import After, Criterion, Cursor, DateValue, ReferenceValue, Sort, StringValue, Value

_SENTINEL_LOW = datetime(1, 1, 2, tzinfo=UTC)
_SENTINEL_HIGH = datetime(9999, 12, 30, tzinfo=UTC)
INDEXED_LENGTH = 300
"""How much of a string the index keeps (lower-cased)."""

R = fhir_resources.c
Shape = tuple[Any, ...]
"""Hashable: strings, numbers, booleans, None and tuples of them; no value a request sent."""
Planned = tuple[Shape, list[Any]]


def bounded(column: Any, prefix: str, low: Any, high: Any) -> ColumnElement[bool]:
    """``column`` against the range [low, high) under a FHIR date prefix."""
    condition: ColumnElement[bool]
    if prefix == "eq":
        condition = and_(column >= low, column < high)
    elif prefix == "ne":
        condition = or_(column < low, column >= high)
    elif prefix in ("gt", "le"):
        condition = column >= high if prefix == "gt" else column < high
    elif prefix in ("lt", "ge"):
        condition = column < low if prefix == "lt" else column >= low
    else:
        raise ValueError(f"date prefix {prefix}")
    return condition


def date_condition(column: Any, value: DateValue) -> ColumnElement[bool]:
    return bounded(column, value.prefix, value.low, value.high)


def _ends_with(column: Any, length: Any, suffix: Any) -> ColumnElement[bool]:
    return and_(func.length(column) > length, func.substr(column, func.length(column) - length + 1) == suffix)


def ends_with(column: Any, suffix: str) -> ColumnElement[bool]:
    """Case-sensitive on both backends (SQLite's LIKE is not)."""
    return _ends_with(column, len(suffix), suffix)


def like_escaped(text: str) -> str:
    """``text`` for a LIKE pattern with ESCAPE '/' (what SQLAlchemy's ``autoescape`` does)."""
    return text.replace("/", "//").replace("%", "/%").replace("_", "/_")


REPEATING_DATES = frozenset({("Goal", "target-date")})
"""Date parameters a resource can hold several values of (``Goal.target`` repeats): each bound may be met by
a value of its own, so their bounds stay separate conditions."""


def _one_bound(resource_type: str, criterion: Criterion) -> bool:
    """A one-value, plain date criterion on an index row of a single-valued parameter."""
    return (
        criterion.kind == "date"
        and criterion.missing is None
        and not criterion.negate
        and len(criterion.values) == 1
        and isinstance(criterion.values[0], DateValue)
        and criterion.values[0].prefix != "ne"
        and (resource_type, criterion.param) not in REPEATING_DATES
    )


def _rows(param: str, condition: Shape | None) -> Shape:
    return ("rows", param, condition)


DRIVING_PARAMS = frozenset({"patient", "subject", "encounter", "identifier"})
"""Parameters whose one value names one participant's or one record's resources: a bounded set, whatever
the value, so a search driven by it has one right plan for all values (a category or a date does not:
``category=clinical-note`` names a third of the program)."""
MAX_DRIVING_IDS = 100


def driving(shapes: Shape) -> int | None:
    """The first criterion a search can be driven by whatever its values (one reference of a
    :data:`DRIVING_PARAMS` parameter, one identifier, a few ``_id`` values), or None."""
    for i, shape in enumerate(shapes):
        if shape[0] == "ids" and not shape[2] and shape[1] <= MAX_DRIVING_IDS:
            return i
        if shape[0] == "or" and len(shape[1]) == 1 and shape[1][0][0] == "rows":
            _, param, condition = shape[1][0]
            if param in DRIVING_PARAMS and condition is not None and condition[0] in ("eq", "in"):
                return i
    return None


MAX_CANDIDATES_TOTAL = 10_000
"""The most matches (a first page's total, carried in the cursor) for which a later page reads its
criterion's index rows in key order before looking any resource up (:func:`candidate`)."""


def candidate(shapes: Shape) -> Shape | None:
    """The index-row criterion of a search that has only that one (``date=ge..&date=lt..``, a category, a
    status), or None. A page of such a search (a first page that counts every match, a later page of few
    matches: ``execute.prepare``) reads the criterion's index rows alone (an index-only scan), sorts their
    resources' pks and looks up only those after the cursor until the page is full
    (:meth:`Compiler.candidates`), where a lookup of every match comes first otherwise (a day's 1,195
    Encounters at a million: 14-18 ms a page, against 0.8-1 ms read this way, EXPLAIN ANALYZE)."""
    if len(shapes) != 1:
        return None
    shape = shapes[0]
    if shape[0] == "or" and len(shape[1]) == 1:
        shape = shape[1][0]
    return shape if shape[0] == "rows" and shape[2] is not None else None


class Compiler:
    """Conditions on ``fhir_resources`` rows of one program and resource type. ``program_id``: the
    program's id, or a bind parameter standing for it."""

    def __init__(self, program_id: Any, resource_type: str, after: Any = None, descending: bool = False) -> None:
        self.program_id = program_id
        self.resource_type = resource_type
        self.after = after
        """A later page in pk order: the cursor's pk (a value or a bind parameter). Every index-row
        condition then repeats the page's own ``pk >`` (or ``<``) bound on the row's ``resource_pk``:
        the same rows match (the row is the resource's own), but the index rows before the cursor are
        left out before the resources are looked up (a day's Encounters at a million: each later page
        looked up every match of the day, profiled)."""
        self.descending = descending

    # --- planning: shapes and values, no SQL -----------------------------------------------------

    def plan(self, criteria: tuple[Criterion, ...]) -> Planned:
        """The criteria AND-ed, the single-valued date parameters' bounds of one parameter (``date=ge..&
        date=lt..``) in one EXISTS over one index row: a range the index scans between both bounds, where
        two EXISTS would scan from one bound to the end of the index."""
        bounds: dict[str, list[DateValue]] = {}
        shapes: list[Shape] = []
        values: list[Any] = []
        for c in criteria:
            if _one_bound(self.resource_type, c):
                bounds.setdefault(c.param, []).append(c.values[0])  # type: ignore[arg-type]
            else:
                shape, taken = self._criterion(c)
                shapes.append(shape)
                values += taken
        for param, dates in bounds.items():
            shapes.append(_rows(param, ("date", tuple(d.prefix for d in dates))))
            for d in dates:
                values += [d.low, d.high]
        return tuple(shapes), values

    def _criterion(self, criterion: Criterion) -> Planned:
        if criterion.missing is not None:
            if criterion.kind in ("_id", "_lastUpdated"):
                return ("false",) if criterion.missing else ("true",), []
            present = _rows(criterion.param, None)
            return ("not", present) if criterion.missing else present, []
        if criterion.kind == "_id":
            ids = [str(v) for v in criterion.values]
            return ("ids", len(ids), criterion.negate), ids
        shapes: list[Shape] = []
        values: list[Any] = []
        for value in criterion.values:
            shape, taken = self._value(criterion, value)
            shapes.append(shape)
            values += taken
        matched: Shape = ("or", tuple(shapes))
        return ("not", matched) if criterion.negate else matched, values

    def _value(self, criterion: Criterion, value: Value) -> Planned:
        param = criterion.param
        if isinstance(value, str):
            return ("id",), [value]
        if isinstance(value, DateValue):
            if criterion.kind == "_lastUpdated":
                return ("updated", value.prefix), [value.low, value.high]
            return _rows(param, ("date", (value.prefix,))), [value.low, value.high]
        if isinstance(value, StringValue):
            text = value.text.lower()[:INDEXED_LENGTH]
            if value.mode == "exact":
                return _rows(param, ("eq",)), [text]
            if value.mode == "contains":
                return _rows(param, ("like",)), ["%" + like_escaped(text) + "%"]
            return _rows(param, ("like",)), [like_escaped(text) + "%"]
        if isinstance(value, ReferenceValue):
            if value.any_type_id is not None:
                suffix = "/" + value.any_type_id
                return _rows(param, ("ends",)), [len(suffix), suffix]
            return _rows(param, ("in", len(value.references))), list(value.references)
        if value.code is None:
            prefix = f"{value.system}|"
            return _rows(param, ("starts",)), [like_escaped(prefix) + "%", len(prefix), prefix]
        if value.system is not None:
            return _rows(param, ("eq",)), [f"{value.system}|{value.code}"]
        found = _rows(param, ("eq",))
        if value.no_system:
            suffix = "|" + value.code
            return ("and", (found, ("not", _rows(param, ("ends",))))), [value.code, len(suffix), suffix]
        return found, [value.code]

    # --- building: SQL from shapes, each value taken from ``values`` in order --------------------

    def build(self, shapes: Shape, values: Iterator[Any], driver: int | None = None) -> list[ColumnElement[bool]]:
        """``driver``: the index of the criterion the statement is driven by (:func:`driving`): every
        other criterion's index rows are then looked up per resource (a subquery PostgreSQL keeps as
        one, never joins on), so that a plan made once, for any values, stays driven by it."""
        return [self._build(s, values, driver is not None and i != driver) for i, s in enumerate(shapes)]

    def criteria(self, criteria: tuple[Criterion, ...]) -> list[ColumnElement[bool]]:
        """The criteria as conditions holding their values (bulk export's ``_typeFilter``)."""
        shapes, values = self.plan(criteria)
        return self.build(shapes, iter(values))

    def _build(self, shape: Shape, v: Iterator[Any], fenced: bool = False) -> ColumnElement[bool]:
        op = shape[0]
        if op == "rows":
            return self.rows(shape[1], None if shape[2] is None else _row_condition(shape[2], v), fenced)
        if op == "or":
            return or_(*(self._build(s, v, fenced) for s in shape[1]))
        if op == "and":
            return and_(*(self._build(s, v, fenced) for s in shape[1]))
        if op == "not":
            return not_(self._build(shape[1], v, fenced))
        if op == "id":
            condition: ColumnElement[bool] = R.resource_id == next(v)
            return condition
        if op == "ids":
            ids = [next(v) for _ in range(shape[1])]
            return R.resource_id.not_in(ids) if shape[2] else R.resource_id.in_(ids)
        if op == "updated":
            return bounded(R.last_updated, shape[1], next(v), next(v))
        return true() if op == "true" else false()

    def rows(
        self, param: str, condition: Callable[[Any], ColumnElement[bool]] | None = None, fenced: bool = False
    ) -> ColumnElement[bool]:
        """EXISTS an index row of ``param`` (meeting ``condition(row)``) for the current resource.
        ``fenced``: a lookup of the resource's own index rows only, by ``(resource_pk, param)``: with
        ``OFFSET 0``, which keeps PostgreSQL from turning it into a join (a subquery with an offset is
        never pulled up), and without the program and type (the resource's pk implies them), which would
        let a plan made for any value scan the value's index rows instead (all of a category's)."""
        s = fhir_search.alias()
        if fenced:
            own = [s.c.resource_pk == R.pk, s.c.param == param]
            if condition is not None:
                own.append(condition(s.c))
            return select(s.c.resource_pk).where(*own).offset(0).exists()
        return exists().where(s.c.resource_pk == R.pk, *self._index_rows(s, param, condition))

    def _index_rows(
        self, s: Any, param: str, condition: Callable[[Any], ColumnElement[bool]] | None
    ) -> list[ColumnElement[bool]]:
        """The program's index rows (``s``: an alias of ``fhir_search``) of the type's ``param`` meeting
        ``condition``, after the page's cursor on a later page in pk order."""
        where = [s.c.program_id == self.program_id, s.c.resource_type == self.resource_type, s.c.param == param]
        if condition is not None:
            where.append(condition(s.c))
        if self.after is not None:
            where.append(s.c.resource_pk < self.after if self.descending else s.c.resource_pk > self.after)
        return where

    def candidates(self, shape: Shape, values: Iterator[Any]) -> Any:
        """A subquery of the resources (their pks, column ``resource_pk``, each once) whose index rows
        meet ``shape`` (a :func:`candidate`), after the page's cursor, in page order."""
        _, param, condition = shape
        s = fhir_search.alias()
        pk = s.c.resource_pk
        where = self._index_rows(s, param, _row_condition(condition, values))
        return select(pk).where(*where).distinct().order_by(pk.desc() if self.descending else pk).subquery()

    def sort_key(self, sort: Sort, cursor: Cursor | After | None) -> Any:
        """The sort key of the current resource (None: pk order). For ``_lastUpdated`` on a later page,
        the key its version current at the cursor's snapshot had, so it keeps its place."""
        if sort.key is None:
            return None
        if sort.key == "_lastUpdated":
            if cursor is None:  # the first page: the snapshot is now
                return R.last_updated
            v = fhir_versions.c
            as_of = (
                select(func.max(v.last_updated))
                .where(
                    v.program_id == R.program_id,
                    v.resource_type == R.resource_type,
                    v.resource_id == R.resource_id,
                    v.pk <= cursor.snapshot,
                )
                .scalar_subquery()
            )
            return func.coalesce(as_of, R.last_updated)
        s = fhir_search.alias()
        aggregate = func.max if sort.descending else func.min
        moment = (
            select(aggregate(s.c.moment))
            .where(
                s.c.resource_pk == R.pk,
                s.c.program_id == self.program_id,
                s.c.resource_type == self.resource_type,
                s.c.param == sort.key,
            )
            .scalar_subquery()
        )
        sentinel = _SENTINEL_LOW if sort.descending else _SENTINEL_HIGH  # no value: last either way
        return func.coalesce(moment, literal(sentinel, UTCDateTime()))


def _row_condition(shape: Shape, v: Iterator[Any]) -> Callable[[Any], ColumnElement[bool]]:
    """The condition on an index row (its columns ``c``) a shape names, its values taken now."""
    op = shape[0]
    if op == "date":
        ranges = [(prefix, next(v), next(v)) for prefix in shape[1]]
        return lambda c: and_(*(bounded(c.moment, p, low, high) for p, low, high in ranges))
    if op == "in":
        tokens = [next(v) for _ in range(shape[1])]
        return lambda c: c.token.in_(tokens)
    if op == "like":
        pattern = next(v)
        return lambda c: c.token.like(pattern, escape="/")
    if op == "starts":  # LIKE for the index, substr for case (SQLite's LIKE ignores it)
        pattern, length, prefix = next(v), next(v), next(v)
        return lambda c: and_(c.token.like(pattern, escape="/"), func.substr(c.token, 1, length) == prefix)
    if op == "ends":
        length, suffix = next(v), next(v)
        return lambda c: _ends_with(c.token, length, suffix)
    token = next(v)  # "eq"
    return lambda c: c.token == token
