"""A gateway search request's parameters (query string, plus the form body of POST _search) as a typed
:class:`SearchQuery` (pure): unknown parameters (a 400, or skipped under lenient handling), criteria,
``_include``/``_revinclude`` and the result controls ``_count``, ``_sort``, ``_summary``,
``_elements``, ``_total`` and ``_cursor``."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from service.fhir.search_params import COMMON_PARAMS, SEARCH_PARAMS, ParamType, SearchParam

from .cursor import decode_cursor
from .query import DEFAULT_COUNT, MAX_COUNT, Criterion, Include, SearchQuery, Sort
from .values import UnsupportedModifier, bad, criterion, include


def date_sort(params: Mapping[str, SearchParam]) -> str | None:
    """What ``_sort=date`` means for a type with these parameters: its ``date`` parameter, else its
    first date-typed one."""
    if "date" in params:
        return "date"
    return next((name for name, p in params.items() if p.type is ParamType.DATE), None)


DATE_SORT: dict[str, str | None] = {resource_type: date_sort(params) for resource_type, params in SEARCH_PARAMS.items()}
"""What ``_sort=date`` means per type: its ``date`` parameter, else its first date-typed one."""

CONTROLS = frozenset(
    {"_count", "_sort", "_summary", "_elements", "_include", "_revinclude", "_cursor", "_total", "_format", "_pretty"}
)
_SINGLE = frozenset({"_count", "_sort", "_summary", "_elements", "_cursor", "_total"})
_ELEMENT = re.compile(r"^[a-z][A-Za-z0-9]{0,63}$")
PK_ORDER = Sort("")
"""The order without ``_sort``: the order records were stored in."""


def sort(resource_type: str, raw: str, params: Mapping[str, SearchParam] | None = None) -> Sort:
    """``_sort`` on ``resource_type`` (``params``: its parameters; by default those of the projection)."""
    if "," in raw:
        raise bad("_sort supports one key", "_sort")
    descending = raw.startswith("-")
    name = raw[1:] if descending else raw
    params = SEARCH_PARAMS[resource_type] if params is None else params
    by_date = date_sort(params)
    if name == "_lastUpdated":
        return Sort(raw, "_lastUpdated", descending)
    if name == "date" and by_date:
        return Sort(raw, by_date, descending)
    if name in params and params[name].type is ParamType.DATE:
        return Sort(raw, name, descending)
    raise bad(f"_sort on {resource_type} supports _lastUpdated and its date parameters", "_sort")


def count(raw: str) -> int:
    """``_count``: a whole number, capped at :data:`MAX_COUNT`."""
    if not raw.isdigit():
        raise bad("_count must be a whole number", "_count")
    return min(int(raw[:6]), MAX_COUNT)


def elements(resource_type: str, raw: str) -> tuple[str, ...]:
    names = []
    for name in raw.split(","):
        name = name.strip().removeprefix(f"{resource_type}.")
        if not _ELEMENT.match(name):
            raise bad("_elements takes a comma-separated list of top-level element names", "_elements")
        names.append(name)
    return tuple(names)


def parse(
    resource_type: str,
    items: Sequence[tuple[str, str]],
    *,
    lenient: bool = False,
    base: str = "",
    params: Mapping[str, SearchParam] | None = None,
    default_sort: Sort = PK_ORDER,
) -> SearchQuery:
    """The request's parameters (query string, plus the form body of POST _search) as a typed query.
    ``params``: the type's parameters when it is not one of the projection's (the audit log's
    AuditEvent); ``default_sort``: the order without ``_sort`` (pk order, ascending by default)."""
    params = SEARCH_PARAMS[resource_type] if params is None else params
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
        if name in CONTROLS:
            if modifier is not None:
                if lenient:
                    ignored.append(key)
                    continue
                raise bad(f"the modifier :{modifier[:40]} is not supported on {name}", key[:80])
            if name in _SINGLE:
                if name in single:
                    raise bad(f"{name} may appear once", name)
                single[name] = raw
            elif name in ("_include", "_revinclude"):
                spec = include(resource_type, name, raw, SEARCH_PARAMS, reverse=name == "_revinclude")
                (revincludes if name == "_revinclude" else includes).append(spec)
            if name != "_cursor":
                links.append((key, raw))
            continue
        param = params.get(name) or COMMON_PARAMS.get(name)
        if param is None:
            if lenient:
                ignored.append(key)
                continue
            raise bad(f"unknown search parameter {key[:80]} for {resource_type}", key[:80])
        try:
            criteria.append(criterion(param, modifier, raw, types=SEARCH_PARAMS, base=base))
        except UnsupportedModifier:
            if lenient:
                ignored.append(key)
                continue
            raise bad(f"the modifier :{(modifier or '')[:40]} is not supported on {name}", key[:80]) from None
        links.append((key, raw))

    order = sort(resource_type, single["_sort"], params) if "_sort" in single else default_sort
    summary = single.get("_summary", "false")
    if summary not in ("count", "false"):
        raise bad("_summary supports count (and false)", "_summary")
    total = single.get("_total", "accurate")
    if total not in ("none", "estimate", "accurate"):
        raise bad("_total takes none, estimate or accurate", "_total")
    return SearchQuery(
        resource_type=resource_type,
        criteria=tuple(criteria),
        count=count(single["_count"]) if "_count" in single else DEFAULT_COUNT,
        sort=order,
        summary_count=summary == "count",
        elements=elements(resource_type, single["_elements"]) if "_elements" in single else None,
        includes=tuple(includes),
        revincludes=tuple(revincludes),
        cursor=decode_cursor(single["_cursor"], order) if "_cursor" in single else None,
        total=total != "none" or summary == "count",
        ignored=tuple(ignored),
        link_params=tuple(links),
    )
