"""FHIR search for the sandbox: the parameters an integration gateway uses, parsed into the gateway's
typed query by its shared parser (``service.fhir.search.values``) and evaluated here over the
in-memory store.

Types: token (``system|code``, ``|code``, ``system|``, ``code``; ``:not``), reference (``Type/id``,
``id``, an absolute URL; ``:Type`` modifiers), date (prefixes ``eq ne gt ge lt le``, any precision,
ranges as FHIR defines them) and string (case- and accent-insensitive starts-with; ``:exact``,
``:contains``); ``:missing`` on every parameter. Comma = OR, a repeated parameter = AND. Result
parameters: ``_count``, ``_offset`` (paging), ``_include`` (``Type:param[:Target]``), ``_sort``
(``_lastUpdated``, ``-_lastUpdated``), ``_summary=count``. An unknown parameter is a 400 unless the
request says ``Prefer: handling=lenient``.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from service.domain.errors import BadRequest
from service.fhir.search.dates import date_range
from service.fhir.search.query import Criterion, DateValue, Include, ReferenceValue, StringValue, TokenValue, Value
from service.fhir.search.values import UnsupportedModifier, criterion, include
from service.fhir.search_params import COMMON_PARAMS, ParamType, SearchParam, element_values

from .config import RESOURCE_TYPES
from .store import Store, Version

DEFAULT_COUNT = 20
MAX_COUNT = 100


def _p(name: str, kind: ParamType, *paths: str, target: str | None = None, doc: str = "") -> SearchParam:
    return SearchParam(name, kind, paths, doc, (target,) if target else ())


def _same(kind: ParamType, *names: str) -> tuple[SearchParam, ...]:
    """Parameters searching the element of their own name."""
    return tuple(_p(name, kind, name) for name in names)


def _subject(path: str) -> tuple[SearchParam, SearchParam]:
    return _p("patient", _R, path, target="Patient"), _p("subject", _R, path)


_T, _R, _D, _S = ParamType.TOKEN, ParamType.REFERENCE, ParamType.DATE, ParamType.STRING
_IDENTIFIER = _p("identifier", _T, "identifier", doc="A business identifier, system|value.")
_STATUS = _p("status", _T, "status")
_NAME = _p("name", _S, "name", doc="Any part of a name (starts-with, case- and accent-insensitive).")
_NAME_PARTS = (_p("family", _S, "name.family"), _p("given", _S, "name.given"))
_ENCOUNTER = _p("encounter", _R, "encounter", target="Encounter")

SEARCH_PARAMS: dict[str, dict[str, SearchParam]] = {
    resource_type: {p.name: p for p in (*COMMON_PARAMS.values(), *params)}
    for resource_type, params in {
        "Patient": (_IDENTIFIER, _NAME, *_NAME_PARTS, _p("birthdate", _D, "birthDate"), *_same(_T, "gender")),
        "Practitioner": (_IDENTIFIER, _NAME, *_NAME_PARTS),
        "Organization": (_IDENTIFIER, _NAME),
        "Encounter": (
            _IDENTIFIER,
            *_subject("subject"),
            _STATUS,
            _p("date", _D, "period.start", doc="When the encounter began."),
            _p("service-provider", _R, "serviceProvider", target="Organization"),
        ),
        "DocumentReference": (
            _IDENTIFIER,
            *_subject("subject"),
            _p("encounter", _R, "context.encounter", target="Encounter"),
            *_same(_T, "status", "type"),
        ),
        "CareTeam": (_IDENTIFIER, *_subject("subject"), _ENCOUNTER, _STATUS),
        "ServiceRequest": (
            _IDENTIFIER,
            *_subject("subject"),
            _ENCOUNTER,
            _STATUS,
            *_same(_R, "requester", "performer"),
            _p("authored", _D, "authoredOn"),
        ),
        "Task": (
            _IDENTIFIER,
            *_subject("for"),
            _ENCOUNTER,
            _STATUS,
            *_same(_R, "owner", "requester", "focus"),
            _p("based-on", _R, "basedOn"),
            *_same(_T, "code"),
            _p("business-status", _T, "businessStatus"),
        ),
        "QuestionnaireResponse": (
            _IDENTIFIER,
            *_subject("subject"),
            _ENCOUNTER,
            _STATUS,
            _p("questionnaire", _R, "questionnaire"),
            _p("authored", _D, "authored"),
        ),
        "Observation": (
            _IDENTIFIER,
            *_subject("subject"),
            _ENCOUNTER,
            _STATUS,
            *_same(_T, "code", "category"),
            _p("date", _D, "effectiveDateTime"),
            _p("derived-from", _R, "derivedFrom"),
            _p("has-member", _R, "hasMember"),
        ),
        "Questionnaire": (_IDENTIFIER, _STATUS, *_same(_T, "url", "version"), _NAME),
    }.items()
}


# --- references ----------------------------------------------------------------------------------------
def reference_key(reference: str) -> str | None:
    """``Type/id`` of a literal reference (relative or absolute, a ``_history`` suffix dropped)."""
    parts = [p for p in reference.split("/") if p]
    if len(parts) >= 4 and parts[-2] == "_history":
        parts = parts[:-2]
    if len(parts) < 2 or parts[-2] not in RESOURCE_TYPES:
        return None
    return f"{parts[-2]}/{parts[-1]}"


# --- matching one value -----------------------------------------------------------------------------
def _date_matches(wanted: DateValue, value: Any) -> bool:
    """The value's own range against the wanted one, as FHIR defines the prefixes."""
    if isinstance(value, dict):  # a Period: its start
        value = value.get("start")
    found = date_range(value) if isinstance(value, str) else None
    if found is None:
        return False
    (lo, hi), (rlo, rhi) = (wanted.low, wanted.high), found
    if wanted.prefix in ("eq", "ne"):
        return (rlo >= lo and rhi <= hi) == (wanted.prefix == "eq")
    if wanted.prefix == "gt":
        return rhi > hi
    if wanted.prefix == "ge":
        return rhi > lo
    if wanted.prefix == "lt":
        return rlo < lo
    return rlo < hi  # le


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):  # HumanName, Address: every text part
        for key in ("text", "family", "given", "prefix", "suffix", "line", "city", "state", "postalCode"):
            part = value.get(key)
            if isinstance(part, str):
                yield part
            elif isinstance(part, list):
                yield from (p for p in part if isinstance(p, str))


def _string_matches(wanted: StringValue, value: Any) -> bool:
    target = _fold(wanted.text)
    for text in _strings(value):
        if wanted.mode == "exact":
            if text == wanted.text:
                return True
        elif wanted.mode == "contains":
            if target in _fold(text):
                return True
        elif _fold(text).startswith(target):
            return True
    return False


def _codings(value: Any) -> Iterator[tuple[str | None, str | None]]:
    if isinstance(value, str):
        yield None, value
    elif isinstance(value, dict):
        if "coding" in value:  # CodeableConcept
            for coding in value.get("coding") or []:
                if isinstance(coding, dict):
                    yield coding.get("system"), coding.get("code")
        elif "value" in value:  # Identifier
            yield value.get("system"), value.get("value")
        else:  # Coding
            yield value.get("system"), value.get("code")


def _token_matches(wanted: TokenValue, value: Any) -> bool:
    for found_system, found_code in _codings(value):
        if wanted.no_system:  # |code: only codes without a system
            system_ok = found_system is None
        elif wanted.system is None:
            system_ok = True
        else:  # a plain code (status, gender) has its element's implicit system
            system_ok = found_system == wanted.system or (found_system is None and isinstance(value, str))
        if system_ok and wanted.code in (None, found_code):
            return True
    return False


def _reference_matches(wanted: ReferenceValue, value: Any) -> bool:
    if isinstance(value, str):  # a canonical (QuestionnaireResponse.questionnaire): url, or url|version
        return any(r in (value, value.split("|", 1)[0]) for r in wanted.references)
    reference = value.get("reference") if isinstance(value, dict) else None
    key = reference_key(reference) if isinstance(reference, str) else None
    if key is None:
        return False
    if wanted.any_type_id is not None:
        return key.split("/")[1] == wanted.any_type_id
    return any(reference_key(r) == key for r in wanted.references)


def _value_matches(wanted: Value, found: list[Any]) -> bool:
    if isinstance(wanted, str):  # _id
        return wanted in found
    if isinstance(wanted, DateValue):
        if wanted.prefix == "ne":
            return bool(found) and all(_date_matches(wanted, v) for v in found)
        return any(_date_matches(wanted, v) for v in found)
    if isinstance(wanted, StringValue):
        return any(_string_matches(wanted, v) for v in found)
    if isinstance(wanted, ReferenceValue):
        return any(_reference_matches(wanted, v) for v in found)
    return any(_token_matches(wanted, v) for v in found)


def matches(param: SearchParam, criterion: Criterion, resource: dict[str, Any]) -> bool:
    """Whether the resource meets one criterion on ``param``."""
    found = [v for path in param.paths for v in element_values(resource, path)]
    if criterion.missing is not None:
        return (not found) == criterion.missing
    hit = any(_value_matches(value, found) for value in criterion.values)
    return hit != criterion.negate


# --- the query -----------------------------------------------------------------------------------------
@dataclass
class Query:
    resource_type: str
    criteria: list[tuple[SearchParam, Criterion]] = field(default_factory=list)
    count: int = DEFAULT_COUNT
    offset: int = 0
    includes: list[Include] = field(default_factory=list)
    descending: bool | None = None
    """_sort on _lastUpdated: None = creation order."""
    summary_count: bool = False
    echo: list[tuple[str, str]] = field(default_factory=list)
    """The parameters applied, for the Bundle's self and next links (paging excluded)."""


def _int(name: str, text: str, low: int) -> int:
    if not re.fullmatch(r"\d{1,9}", text) or int(text) < low:
        raise BadRequest(f"{name} must be a whole number of at least {low}")
    return int(text)


def _control(query: Query, name: str, raw: str) -> None:
    if name == "_count":
        query.count = min(_int("_count", raw, 0), MAX_COUNT)
    elif name == "_offset":
        query.offset = _int("_offset", raw, 0)
    elif name == "_summary":
        if raw != "count":
            raise BadRequest("only _summary=count is supported")
        query.summary_count = True
    elif raw not in ("_lastUpdated", "-_lastUpdated"):  # _sort
        raise BadRequest("_sort supports _lastUpdated and -_lastUpdated")
    else:
        query.descending = raw.startswith("-")


def parse_query(
    resource_type: str,
    pairs: Iterable[tuple[str, str]],
    supported: dict[str, SearchParam],
    *,
    lenient: bool = False,
    supported_includes: dict[str, dict[str, SearchParam]] | None = None,
) -> Query:
    """Parse the parameters of ``resource_type?...`` against what the server supports."""
    query = Query(resource_type)
    unknown: list[str] = []
    for key, raw in pairs:
        name, _, modifier = key.partition(":")
        if name in ("_format", "_pretty"):
            continue
        if name in ("_count", "_offset", "_summary", "_sort"):
            _control(query, name, raw)
        elif name == "_include":
            served = supported_includes or {resource_type: supported}
            query.includes.append(include(resource_type, name, raw, served, reverse=False))
        elif name in supported:
            if not raw:
                raise BadRequest(f"{name} needs a value")
            try:
                found = criterion(supported[name], modifier or None, raw, types=RESOURCE_TYPES)
            except UnsupportedModifier:
                raise BadRequest(f"the modifier :{modifier[:30]} is not supported on {name}") from None
            query.criteria.append((supported[name], found))
        else:
            unknown.append(key)
            continue
        if name not in ("_count", "_offset"):
            query.echo.append((key, raw))
    if unknown and not lenient:
        names = ", ".join(sorted({u[:40] for u in unknown}))
        raise BadRequest(f"unknown or unsupported search parameter(s) on {resource_type}: {names}")
    return query


def run(store: Store, query: Query) -> list[Version]:
    """Every matching current version, in the query's order."""
    matches_all = [
        v
        for v in store.live(query.resource_type)
        if all(matches(param, c, v.resource or {}) for param, c in query.criteria)
    ]
    if query.descending is not None:
        matches_all.sort(key=lambda v: v.last_updated, reverse=query.descending)
    return matches_all


def included(store: Store, page: list[Version], includes: list[Include]) -> list[Version]:
    """The resources the page's entries point at through the _include parameters (each once, not the
    page's own)."""
    seen = {v.reference for v in page}
    found: list[Version] = []
    for spec in includes:
        paths = SEARCH_PARAMS[spec.source_type][spec.param].paths
        for version in page:
            for value in (v for path in paths for v in element_values(version.resource or {}, path)):
                ref = value.get("reference") if isinstance(value, dict) else None
                key = reference_key(ref) if isinstance(ref, str) else None
                if key is None or key in seen:
                    continue
                target_type, target_id = key.split("/")
                if spec.target_type is not None and target_type != spec.target_type:
                    continue
                if store.exists(target_type, target_id):
                    seen.add(key)
                    found.append(store.read(target_type, target_id))
    return found
