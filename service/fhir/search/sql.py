"""A typed query's criteria and sort key as SQL over the projection: every criterion is an EXISTS on
``fhir_search`` correlated to ``fhir_resources.pk`` (or a condition on the resource row for ``_id``
and ``_lastUpdated``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, false, func, literal, not_, or_, select, true

from service.store.tables import fhir_resources, fhir_search, fhir_versions
from service.store.types import UTCDateTime

from .query import Criterion, Cursor, DateValue, ReferenceValue, Sort, StringValue, Value

_SENTINEL_LOW = datetime(1, 1, 2, tzinfo=UTC)
_SENTINEL_HIGH = datetime(9999, 12, 30, tzinfo=UTC)
INDEXED_LENGTH = 300
"""How much of a string the index keeps (lower-cased)."""

R = fhir_resources.c


def date_condition(column: Any, value: DateValue) -> ColumnElement[bool]:
    low, high = value.low, value.high
    conditions: dict[str, ColumnElement[bool]] = {
        "eq": and_(column >= low, column < high),
        "ne": or_(column < low, column >= high),
        "gt": column >= high,
        "lt": column < low,
        "ge": column >= low,
        "le": column < high,
    }
    return conditions[value.prefix]


def ends_with(column: Any, suffix: str) -> ColumnElement[bool]:
    """Case-sensitive on both backends (SQLite's LIKE is not)."""
    return and_(
        func.length(column) > len(suffix),
        func.substr(column, func.length(column) - len(suffix) + 1) == suffix,
    )


def _starts_with(column: Any, prefix: str) -> ColumnElement[bool]:
    return and_(column.startswith(prefix, autoescape=True), func.substr(column, 1, len(prefix)) == prefix)


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


class Compiler:
    """Conditions on ``fhir_resources`` rows of one program and resource type."""

    def __init__(self, program_id: str, resource_type: str) -> None:
        self.program_id = program_id
        self.resource_type = resource_type

    def rows(self, param: str, condition: Any = None) -> ColumnElement[bool]:
        """EXISTS an index row of ``param`` (meeting ``condition(row)``) for the current resource."""
        s = fhir_search.alias()
        where = [
            s.c.resource_pk == R.pk,
            s.c.program_id == self.program_id,
            s.c.resource_type == self.resource_type,
            s.c.param == param,
        ]
        if condition is not None:
            where.append(condition(s.c))
        return exists().where(*where)

    def value(self, criterion: Criterion, value: Value) -> ColumnElement[bool]:
        param = criterion.param
        if isinstance(value, str):
            return R.resource_id == value
        if isinstance(value, DateValue):
            if criterion.kind == "_lastUpdated":
                return date_condition(R.last_updated, value)
            return self.rows(param, lambda c: date_condition(c.moment, value))
        if isinstance(value, StringValue):
            text = value.text.lower()[:INDEXED_LENGTH]
            if value.mode == "exact":
                return self.rows(param, lambda c: c.token == text)
            if value.mode == "contains":
                return self.rows(param, lambda c: c.token.contains(text, autoescape=True))
            return self.rows(param, lambda c: c.token.startswith(text, autoescape=True))
        if isinstance(value, ReferenceValue):
            if value.any_type_id is not None:
                suffix = "/" + value.any_type_id
                return self.rows(param, lambda c: ends_with(c.token, suffix))
            references = list(value.references)
            return self.rows(param, lambda c: c.token.in_(references))
        if value.code is None:
            prefix = f"{value.system}|"
            return self.rows(param, lambda c: _starts_with(c.token, prefix))
        if value.system is not None:
            token = f"{value.system}|{value.code}"
            return self.rows(param, lambda c: c.token == token)
        code = value.code
        found = self.rows(param, lambda c: c.token == code)
        if value.no_system:
            return and_(found, not_(self.rows(param, lambda c: ends_with(c.token, "|" + code))))
        return found

    def criteria(self, criteria: tuple[Criterion, ...]) -> list[ColumnElement[bool]]:
        """The criteria AND-ed, the single-valued date parameters' bounds of one parameter (``date=ge..&
        date=lt..``) in one EXISTS over one index row: a range the index scans between both bounds, where
        two EXISTS would scan from one bound to the end of the index."""
        bounds: dict[str, list[DateValue]] = {}
        rest: list[ColumnElement[bool]] = []
        for c in criteria:
            if _one_bound(self.resource_type, c):
                bounds.setdefault(c.param, []).append(c.values[0])  # type: ignore[arg-type]
            else:
                rest.append(self.criterion(c))
        for param, values in bounds.items():
            rest.append(self.rows(param, lambda c, vs=values: and_(*(date_condition(c.moment, v) for v in vs))))
        return rest

    def criterion(self, criterion: Criterion) -> ColumnElement[bool]:
        if criterion.missing is not None:
            if criterion.kind in ("_id", "_lastUpdated"):
                return false() if criterion.missing else true()
            present = self.rows(criterion.param)
            return not_(present) if criterion.missing else present
        if criterion.kind == "_id":
            ids = [str(v) for v in criterion.values]
            return R.resource_id.not_in(ids) if criterion.negate else R.resource_id.in_(ids)
        matched = or_(*(self.value(criterion, v) for v in criterion.values))
        return not_(matched) if criterion.negate else matched

    def sort_key(self, sort: Sort, cursor: Cursor | None) -> Any:
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
