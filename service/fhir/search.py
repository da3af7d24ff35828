"""FHIR search (https://hl7.org/fhir/R4/search.html) over the projection.

A request's parameters are parsed once into a typed :class:`SearchQuery`; :func:`run` turns it into
SQL: every criterion is an EXISTS on ``fhir_search`` correlated to ``fhir_resources.pk`` (or a
condition on the resource row for ``_id`` and ``_lastUpdated``), the page is keyset-paged on the
sort key and pk, and the Bundle is spliced from the stored bytes.

Paging stays stable while records are written: the keyset skips nothing that sorts after the last
entry and never returns it twice; for ``_lastUpdated`` the cursor also pins a snapshot of
``fhir_versions`` so a resource updated after paging started keeps the place it had (the key comes
from its version current at the snapshot).
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Literal
from urllib.parse import urlencode

import orjson
from sqlalchemy import ColumnElement, and_, exists, false, func, literal, not_, or_, select, true
from sqlalchemy.ext.asyncio import AsyncConnection

from service.auth.boundary import visible
from service.domain.errors import BadRequest
from service.store.tables import fhir_resources, fhir_search, fhir_versions
from service.store.types import UTCDateTime

from .bundle import splice
from .search_params import SEARCH_PARAMS, ParamType

DEFAULT_COUNT = 50
MAX_COUNT = 500
SUBSETTED = {
    "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
    "code": "SUBSETTED",
    "display": "Resource encoded in summary mode",
}
REFERENCE_TARGETS: dict[str, tuple[str, ...]] = {
    "patient": ("Patient",),
    "subject": ("Patient",),
    "encounter": ("Encounter",),
    "focus": ("ServiceRequest",),
}
"""Types a bare id expands to; a reference parameter not listed matches a bare id of any type."""

DATE_SORT: dict[str, str | None] = {
    resource_type: (
        "date" if "date" in params else next((name for name, p in params.items() if p.type is ParamType.DATE), None)
    )
    for resource_type, params in SEARCH_PARAMS.items()
}
"""What ``_sort=date`` means per type: its ``date`` parameter, else its first date-typed one."""

_CONTROLS = frozenset(
    {"_count", "_sort", "_summary", "_elements", "_include", "_revinclude", "_cursor", "_total", "_format", "_pretty"}
)
_SINGLE = frozenset({"_count", "_sort", "_summary", "_elements", "_cursor", "_total"})
_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
_TYPED_REF = re.compile(r"^([A-Z][A-Za-z]{1,39})/([A-Za-z0-9\-.]{1,64})(?:/_history/[A-Za-z0-9\-.]{1,64})?$")
_ELEMENT = re.compile(r"^[a-z][A-Za-z0-9]{0,63}$")
_DATE = re.compile(
    r"^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})?)?)?)?$"
)
_DATE_PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le")
_SENTINEL_LOW = datetime(1, 1, 2, tzinfo=UTC)
_SENTINEL_HIGH = datetime(9999, 12, 30, tzinfo=UTC)
_MAX_PK = 2**63

R = fhir_resources.c


# --- the typed query -------------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenValue:
    code: str | None
    """None: any code of ``system``."""
    system: str | None
    """None: any system, unless ``no_system``."""
    no_system: bool = False


@dataclass(frozen=True)
class ReferenceValue:
    references: tuple[str, ...] = ()
    """Exact index tokens (``Type/id`` or an absolute URL)."""
    any_type_id: str | None = None
    """A bare id matched against a reference of any type."""


@dataclass(frozen=True)
class DateValue:
    prefix: str
    low: datetime
    high: datetime
    """The value's precision as a half-open range [low, high)."""


@dataclass(frozen=True)
class StringValue:
    text: str
    mode: Literal["starts", "exact", "contains"]


Value = TokenValue | ReferenceValue | DateValue | StringValue | str
Kind = Literal["token", "reference", "date", "string", "_id", "_lastUpdated"]
_KINDS: dict[ParamType, Kind] = {
    ParamType.TOKEN: "token",
    ParamType.REFERENCE: "reference",
    ParamType.DATE: "date",
    ParamType.STRING: "string",
}


@dataclass(frozen=True)
class Criterion:
    """One occurrence of a parameter: its values are OR-ed; occurrences are AND-ed."""

    param: str
    kind: Kind
    values: tuple[Value, ...] = ()
    negate: bool = False
    missing: bool | None = None


@dataclass(frozen=True)
class Include:
    source_type: str
    param: str
    target_type: str | None = None


@dataclass(frozen=True)
class Sort:
    text: str
    """As requested (``-date``), or ``""`` for the default order (pk); carried in the cursor."""
    key: str | None = None
    """``_lastUpdated``, a date parameter name, or None for pk order."""
    descending: bool = False


@dataclass(frozen=True)
class Cursor:
    sort: str
    key: datetime | None
    pk: int
    snapshot: int


@dataclass(frozen=True)
class SearchQuery:
    resource_type: str
    criteria: tuple[Criterion, ...] = ()
    count: int = DEFAULT_COUNT
    sort: Sort = Sort("")
    summary_count: bool = False
    elements: tuple[str, ...] | None = None
    includes: tuple[Include, ...] = ()
    revincludes: tuple[Include, ...] = ()
    cursor: Cursor | None = None
    total: bool = True
    ignored: tuple[str, ...] = ()
    """Unknown parameters skipped under ``Prefer: handling=lenient``."""
    link_params: tuple[tuple[str, str], ...] = ()
    """The parameters that took effect, for the self and next links (``_cursor`` excluded)."""


@dataclass(frozen=True)
class Found:
    pk: int
    resource_type: str
    resource_id: str
    body: bytes
    patient_id: str | None = None
    """The Patient the resource is about (for the audit record of whose data a search returned)."""


@dataclass(frozen=True)
class SearchResult:
    total: int | None
    matches: list[Found]
    included: list[Found]
    next_cursor: str | None


# --- parsing -----------------------------------------------------------------------------------------


def _bad(detail: str, expression: str) -> BadRequest:
    return BadRequest(detail, errors=[{"expression": expression}])


def _split(value: str, separator: str) -> list[str]:
    """Split on unescaped separators, keeping escapes (``\\,`` ``\\|`` ``\\$`` ``\\\\``) for later."""
    parts: list[str] = []
    current: list[str] = []
    escaped = False
    for char in value:
        if escaped:
            current.append("\\" + char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == separator:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    if escaped:
        current.append("\\")
    parts.append("".join(current))
    return parts


def _unescape(value: str) -> str:
    return re.sub(r"\\([\\,|$])", r"\1", value)


def date_range(text: str) -> tuple[datetime, datetime] | None:
    """A FHIR date/dateTime search value as the half-open UTC range its precision covers."""
    match = _DATE.match(text.replace(" ", "+"))  # an unencoded "+" offset arrives as a space
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    try:
        if month is None:
            low = datetime(int(year), 1, 1, tzinfo=UTC)
            return low, low.replace(year=low.year + 1)
        if day is None:
            low = datetime(int(year), int(month), 1, tzinfo=UTC)
            following = low.replace(year=low.year + 1, month=1) if low.month == 12 else low.replace(month=low.month + 1)
            return low, following
        if hour is None:
            low = datetime(int(year), int(month), int(day), tzinfo=UTC)
            return low, low + timedelta(days=1)
        if zone in (None, "Z"):
            tz = UTC
        else:
            sign = -1 if zone[0] == "-" else 1
            tz = timezone(sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6])))
        digits = (fraction or ".")[1:]
        micro = int((digits + "000000")[:6]) if digits else 0
        low = datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second or 0), micro, tzinfo=tz
        ).astimezone(UTC)
        if second is None:
            step = timedelta(minutes=1)
        elif not digits:
            step = timedelta(seconds=1)
        else:
            step = timedelta(microseconds=10 ** max(0, 6 - len(digits)))
        return low, low + step
    except (ValueError, OverflowError):
        return None


def _date_value(name: str, raw: str) -> DateValue:
    if raw[:2].isalpha() and raw[:2] not in _DATE_PREFIXES:
        raise _bad(f"the date prefix of {name} is not supported (use eq, ne, gt, lt, ge or le)", name)
    prefix, text = (raw[:2], raw[2:]) if raw[:2] in _DATE_PREFIXES else ("eq", raw)
    bounds = date_range(text)
    if bounds is None:
        raise _bad(f"{name} needs a FHIR date or dateTime (2026, 2026-01, 2026-01-05, 2026-01-05T10:00:00Z)", name)
    return DateValue(prefix, *bounds)


def _token_value(name: str, raw: str) -> TokenValue:
    parts = _split(raw, "|")
    if len(parts) == 1:
        return TokenValue(code=_unescape(parts[0]), system=None)
    if len(parts) != 2 or parts == ["", ""]:
        raise _bad(f"{name} takes code, system|code, |code or system|", name)
    system, code = _unescape(parts[0]), _unescape(parts[1])
    if not system:
        return TokenValue(code=code, system=None, no_system=True)
    return TokenValue(code=code or None, system=system)


def _reference_value(name: str, raw: str, target: str | None, base: str) -> ReferenceValue:
    value = _unescape(raw)
    if base and value.startswith(base + "/"):
        value = value[len(base) + 1 :]
    typed = _TYPED_REF.match(value)
    if typed is not None:
        if target is not None and typed.group(1) != target:
            raise _bad(f"{name}:{target} names a {target}, not another type", f"{name}:{target}")
        return ReferenceValue(references=(f"{typed.group(1)}/{typed.group(2)}",))
    if "://" in value and len(value) <= 300:
        return ReferenceValue(references=(value,))
    if not _ID.match(value):
        raise _bad(f"{name} takes Type/id or an id", name)
    if target is not None:
        return ReferenceValue(references=(f"{target}/{value}",))
    targets = REFERENCE_TARGETS.get(name)
    if targets:
        return ReferenceValue(references=tuple(f"{t}/{value}" for t in targets))
    return ReferenceValue(any_type_id=value)


class UnsupportedModifier(Exception):
    """A modifier this server does not support on that parameter (lenient handling skips it)."""


def _criterion(resource_type: str, name: str, modifier: str | None, raw: str, base: str) -> Criterion:
    """One parameter occurrence."""
    shown = f"{name}:{modifier}" if modifier else name
    kind: Kind
    if name == "_id":
        kind = "_id"
    elif name == "_lastUpdated":
        kind = "_lastUpdated"
    else:
        kind = _KINDS[SEARCH_PARAMS[resource_type][name].type]
    allowed: set[str | None] = {None, "missing"}
    if kind in ("token", "_id"):
        allowed.add("not")
    elif kind == "string":
        allowed |= {"exact", "contains"}
    elif kind == "reference":
        allowed |= set(SEARCH_PARAMS)
    if modifier not in allowed:
        raise UnsupportedModifier(shown)
    if modifier == "missing":
        if raw not in ("true", "false"):
            raise _bad(f"{shown} takes true or false", shown)
        return Criterion(name, kind, missing=raw == "true")
    values: list[Value] = []
    for part in _split(raw, ","):
        if part == "":
            raise _bad(f"{shown} has an empty value in its list", shown)
        if kind == "_id":
            values.append(_unescape(part))
        elif kind in ("date", "_lastUpdated"):
            values.append(_date_value(shown, _unescape(part)))
        elif kind == "token":
            values.append(_token_value(shown, part))
        elif kind == "string":
            mode: Literal["starts", "exact", "contains"] = (
                "exact" if modifier == "exact" else "contains" if modifier == "contains" else "starts"
            )
            values.append(StringValue(_unescape(part).lower()[:300], mode))
        else:
            values.append(_reference_value(shown, part, modifier, base))
    return Criterion(name, kind, tuple(values), negate=modifier == "not")


def _include(resource_type: str, control: str, raw: str, *, reverse: bool) -> Include:
    parts = raw.split(":")
    if len(parts) not in (2, 3):
        raise _bad(f"{control} takes Type:parameter or Type:parameter:TargetType", control)
    source, param = parts[0], parts[1]
    target = parts[2] if len(parts) == 3 else None
    if not reverse and source != resource_type:
        raise _bad(f"{control} must start with the searched type ({resource_type})", control)
    found = SEARCH_PARAMS.get(source, {}).get(param)
    if found is None or found.type is not ParamType.REFERENCE:
        raise _bad(f"{control}: {source[:40]}:{param[:40]} is not a reference parameter this server supports", control)
    if target is not None and target not in SEARCH_PARAMS:
        raise _bad(f"{control}: this server does not serve {target[:40]} resources", control)
    return Include(source, param, target)


def _sort(resource_type: str, raw: str) -> Sort:
    if "," in raw:
        raise _bad("_sort supports one key", "_sort")
    descending = raw.startswith("-")
    name = raw[1:] if descending else raw
    params = SEARCH_PARAMS[resource_type]
    if name == "_lastUpdated":
        return Sort(raw, "_lastUpdated", descending)
    if name == "date" and DATE_SORT[resource_type]:
        return Sort(raw, DATE_SORT[resource_type], descending)
    if name in params and params[name].type is ParamType.DATE:
        return Sort(raw, name, descending)
    raise _bad(f"_sort on {resource_type} supports _lastUpdated and its date parameters", "_sort")


def _count(raw: str) -> int:
    if not raw.isdigit():
        raise _bad("_count must be a whole number", "_count")
    return min(int(raw[:6]), MAX_COUNT)


def _elements(resource_type: str, raw: str) -> tuple[str, ...]:
    names = []
    for name in raw.split(","):
        name = name.strip().removeprefix(f"{resource_type}.")
        if not _ELEMENT.match(name):
            raise _bad("_elements takes a comma-separated list of top-level element names", "_elements")
        names.append(name)
    return tuple(names)


def encode_cursor(cursor: Cursor) -> str:
    payload = {
        "s": cursor.sort,
        "k": cursor.key.isoformat() if cursor.key else None,
        "p": cursor.pk,
        "n": cursor.snapshot,
    }
    return base64.urlsafe_b64encode(orjson.dumps(payload)).decode().rstrip("=")


def decode_cursor(raw: str, sort: Sort) -> Cursor:
    """A cursor this server issued for this sort, or a 400."""
    error = _bad("_cursor is not one this server issued for this search", "_cursor")
    if len(raw) > 400:
        raise error
    try:
        payload = orjson.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    except (ValueError, binascii.Error):
        raise error from None
    if not isinstance(payload, dict) or set(payload) != {"s", "k", "p", "n"} or payload["s"] != sort.text:
        raise error
    pk, snapshot, key = payload["p"], payload["n"], payload["k"]
    if type(pk) is not int or type(snapshot) is not int or not (0 <= pk < _MAX_PK and 0 <= snapshot < _MAX_PK):
        raise error
    if sort.key is None:
        if key is not None:
            raise error
        return Cursor(sort.text, None, pk, snapshot)
    if not isinstance(key, str):
        raise error
    try:
        moment = datetime.fromisoformat(key)
    except ValueError:
        raise error from None
    if moment.tzinfo is None:
        raise error
    return Cursor(sort.text, moment.astimezone(UTC), pk, snapshot)


def parse(
    resource_type: str, items: Sequence[tuple[str, str]], *, lenient: bool = False, base: str = ""
) -> SearchQuery:
    """The request's parameters (query string, plus the form body of POST _search) as a typed query."""
    params = SEARCH_PARAMS[resource_type]
    criteria: list[Criterion] = []
    includes: list[Include] = []
    revincludes: list[Include] = []
    ignored: list[str] = []
    links: list[tuple[str, str]] = []
    single: dict[str, str] = {}
    for key, raw in items:
        name, _, modifier_text = key.partition(":")
        modifier = modifier_text or None
        if raw == "":  # FHIR: a parameter with an empty value is ignored
            continue
        if name in _CONTROLS:
            if modifier is not None:
                if lenient:
                    ignored.append(key)
                    continue
                raise _bad(f"the modifier :{modifier[:40]} is not supported on {name}", key[:80])
            if name in _SINGLE:
                if name in single:
                    raise _bad(f"{name} may appear once", name)
                single[name] = raw
            elif name == "_include":
                includes.append(_include(resource_type, name, raw, reverse=False))
            elif name == "_revinclude":
                revincludes.append(_include(resource_type, name, raw, reverse=True))
            if name != "_cursor":
                links.append((key, raw))
            continue
        if name not in params and name not in ("_id", "_lastUpdated"):
            if lenient:
                ignored.append(key)
                continue
            raise _bad(f"unknown search parameter {key[:80]} for {resource_type}", key[:80])
        try:
            criteria.append(_criterion(resource_type, name, modifier, raw, base))
        except UnsupportedModifier:
            if lenient:
                ignored.append(key)
                continue
            raise _bad(f"the modifier :{(modifier or '')[:40]} is not supported on {name}", key[:80]) from None
        links.append((key, raw))

    sort = _sort(resource_type, single["_sort"]) if "_sort" in single else Sort("")
    summary = single.get("_summary", "false")
    if summary not in ("count", "false"):
        raise _bad("_summary supports count (and false)", "_summary")
    total = single.get("_total", "accurate")
    if total not in ("none", "estimate", "accurate"):
        raise _bad("_total takes none, estimate or accurate", "_total")
    return SearchQuery(
        resource_type=resource_type,
        criteria=tuple(criteria),
        count=_count(single["_count"]) if "_count" in single else DEFAULT_COUNT,
        sort=sort,
        summary_count=summary == "count",
        elements=_elements(resource_type, single["_elements"]) if "_elements" in single else None,
        includes=tuple(includes),
        revincludes=tuple(revincludes),
        cursor=decode_cursor(single["_cursor"], sort) if "_cursor" in single else None,
        total=total != "none" or summary == "count",
        ignored=tuple(ignored),
        link_params=tuple(links),
    )


# --- SQL -----------------------------------------------------------------------------------------------


def _date_condition(column: Any, value: DateValue) -> ColumnElement[bool]:
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


def _ends_with(column: Any, suffix: str) -> ColumnElement[bool]:
    """Case-sensitive on both backends (SQLite's LIKE is not)."""
    return and_(
        func.length(column) > len(suffix),
        func.substr(column, func.length(column) - len(suffix) + 1) == suffix,
    )


def _starts_with(column: Any, prefix: str) -> ColumnElement[bool]:
    return and_(column.startswith(prefix, autoescape=True), func.substr(column, 1, len(prefix)) == prefix)


class _Compiler:
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
                return _date_condition(R.last_updated, value)
            return self.rows(param, lambda c: _date_condition(c.moment, value))
        if isinstance(value, StringValue):
            text = value.text
            if value.mode == "exact":
                return self.rows(param, lambda c: c.token == text)
            if value.mode == "contains":
                return self.rows(param, lambda c: c.token.contains(text, autoescape=True))
            return self.rows(param, lambda c: c.token.startswith(text, autoescape=True))
        if isinstance(value, ReferenceValue):
            if value.any_type_id is not None:
                suffix = "/" + value.any_type_id
                return self.rows(param, lambda c: _ends_with(c.token, suffix))
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
            return and_(found, not_(self.rows(param, lambda c: _ends_with(c.token, "|" + code))))
        return found

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


def _found(row: Any) -> Found:
    return Found(row.pk, row.resource_type, row.resource_id, bytes(row.body), row.patient_id)


async def run(
    conn: AsyncConnection, program_id: str, query: SearchQuery, organization: str | None = None
) -> SearchResult:
    """``organization``: the searcher's data boundary; matches and includes outside it do not exist."""
    compiler = _Compiler(program_id, query.resource_type)
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
            typed = _TYPED_REF.match(token or "")
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


# --- the Bundle -------------------------------------------------------------------------------------


def _subset(body: bytes, elements: tuple[str, ...]) -> bytes:
    """Only the requested top-level elements (plus resourceType, id, meta), tagged SUBSETTED."""
    resource = orjson.loads(body)
    keep = {"resourceType", "id", "meta", *elements}
    subset = {key: value for key, value in resource.items() if key in keep}
    meta = dict(subset.get("meta") or {})
    tags = [tag for tag in meta.get("tag") or [] if tag.get("code") != "SUBSETTED"]
    meta["tag"] = [*tags, SUBSETTED]
    subset["meta"] = meta
    return orjson.dumps(subset)


def bundle(query: SearchQuery, result: SearchResult, base: str) -> bytes:
    """The searchset Bundle: matches, then included resources, then any warning (lenient handling)."""
    url = f"{base}/{query.resource_type}"
    params = list(query.link_params)
    self_params = params + ([("_cursor", encode_cursor(query.cursor))] if query.cursor else [])
    links = [("self", f"{url}?{urlencode(self_params, safe=':,')}" if self_params else url)]
    if result.next_cursor:
        links.append(("next", f"{url}?{urlencode([*params, ('_cursor', result.next_cursor)], safe=':,')}"))
    entries: list[tuple[str, bytes, dict[str, Any]]] = []
    for match in result.matches:
        body = _subset(match.body, query.elements) if query.elements is not None else match.body
        entries.append((f"{base}/{match.resource_type}/{match.resource_id}", body, {"search": {"mode": "match"}}))
    for item in result.included:
        entries.append((f"{base}/{item.resource_type}/{item.resource_id}", item.body, {"search": {"mode": "include"}}))
    if query.ignored:
        outcome = {
            "resourceType": "OperationOutcome",
            "issue": [
                {
                    "severity": "warning",
                    "code": "not-supported",
                    "diagnostics": "ignored unsupported search parameters: " + ", ".join(n[:80] for n in query.ignored),
                    "expression": [n[:80] for n in query.ignored],
                }
            ],
        }
        entries.append((f"urn:uuid:{uuid.uuid4()}", orjson.dumps(outcome), {"search": {"mode": "outcome"}}))
    if not entries:  # FHIR arrays are never empty: no "entry" at all
        head: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset"}
        if result.total is not None:
            head["total"] = result.total
        head["link"] = [{"relation": relation, "url": link} for relation, link in links]
        return orjson.dumps(head)
    return splice("searchset", entries, total=result.total, links=links)
