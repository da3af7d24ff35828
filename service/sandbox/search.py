"""FHIR search for the sandbox: the parameters an integration gateway uses, parsed once into a typed
query and evaluated over the in-memory store.

Types: token (``system|code``, ``|code``, ``system|``, ``code``), reference (``Type/id``, ``id``, an
absolute URL; ``:Type`` modifiers), date (prefixes ``eq ne gt ge lt le``, any precision, ranges as
FHIR defines them) and string (case- and accent-insensitive starts-with; ``:exact``, ``:contains``);
``:missing`` on every parameter. Comma = OR, a repeated parameter = AND. Result parameters:
``_count``, ``_offset`` (paging), ``_include`` (``Type:param[:Target]``), ``_sort`` (``_lastUpdated``,
``-_lastUpdated``), ``_summary=count``. An unknown parameter is a 400 unless the request says
``Prefer: handling=lenient``.
"""

from __future__ import annotations

import calendar
import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from enum import StrEnum
from typing import Any

from service.domain.errors import BadRequest

from .config import RESOURCE_TYPES
from .store import Store, Version

DEFAULT_COUNT = 20
MAX_COUNT = 100


class ParamType(StrEnum):
    TOKEN = "token"  # noqa: S105 - a FHIR search parameter type
    REFERENCE = "reference"
    DATE = "date"
    STRING = "string"


@dataclass(frozen=True)
class SearchParam:
    name: str
    type: ParamType
    paths: tuple[str, ...]
    target: str | None = None
    """For a reference parameter limited to one type (``patient`` -> Patient)."""
    documentation: str = ""


def _p(name: str, kind: ParamType, *paths: str, target: str | None = None, doc: str = "") -> SearchParam:
    return SearchParam(name, kind, paths, target, doc)


_T, _R, _D, _S = ParamType.TOKEN, ParamType.REFERENCE, ParamType.DATE, ParamType.STRING
COMMON = (
    _p("_id", _T, "id", doc="The resource id."),
    _p("_lastUpdated", _D, "meta.lastUpdated", doc="When the resource last changed (gt ge lt le eq ne)."),
)
_IDENTIFIER = _p("identifier", _T, "identifier", doc="A business identifier, system|value.")
_STATUS = _p("status", _T, "status")
_NAME = _p("name", _S, "name", doc="Any part of a name (starts-with, case- and accent-insensitive).")


def _subject(path: str) -> tuple[SearchParam, SearchParam]:
    return _p("patient", _R, path, target="Patient"), _p("subject", _R, path)


SEARCH_PARAMS: dict[str, dict[str, SearchParam]] = {
    resource_type: {p.name: p for p in (*COMMON, *params)}
    for resource_type, params in {
        "Patient": (
            _IDENTIFIER,
            _NAME,
            _p("family", _S, "name.family"),
            _p("given", _S, "name.given"),
            _p("birthdate", _D, "birthDate"),
            _p("gender", _T, "gender"),
        ),
        "Practitioner": (_IDENTIFIER, _NAME, _p("family", _S, "name.family"), _p("given", _S, "name.given")),
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
            _STATUS,
            _p("type", _T, "type"),
        ),
        "CareTeam": (_IDENTIFIER, *_subject("subject"), _p("encounter", _R, "encounter", target="Encounter"), _STATUS),
        "ServiceRequest": (
            _IDENTIFIER,
            *_subject("subject"),
            _p("encounter", _R, "encounter", target="Encounter"),
            _STATUS,
            _p("requester", _R, "requester"),
            _p("performer", _R, "performer"),
            _p("authored", _D, "authoredOn"),
        ),
        "Task": (
            _IDENTIFIER,
            _p("patient", _R, "for", target="Patient"),
            _p("subject", _R, "for"),
            _p("encounter", _R, "encounter", target="Encounter"),
            _STATUS,
            _p("owner", _R, "owner"),
            _p("requester", _R, "requester"),
            _p("focus", _R, "focus"),
            _p("based-on", _R, "basedOn"),
            _p("code", _T, "code"),
            _p("business-status", _T, "businessStatus"),
        ),
    }.items()
}


# --- the element walk ----------------------------------------------------------------------------------
def element_values(resource: dict[str, Any], path: str) -> list[Any]:
    """The values at a dotted path, lists flattened on the way."""
    current: list[Any] = [resource]
    for part in path.split("."):
        found: list[Any] = []
        for item in current:
            value = item.get(part) if isinstance(item, dict) else None
            if isinstance(value, list):
                found.extend(value)
            elif value is not None:
                found.append(value)
        current = found
    return current


def reference_key(reference: str) -> str | None:
    """``Type/id`` of a literal reference (relative or absolute, a ``_history`` suffix dropped)."""
    parts = [p for p in reference.split("/") if p]
    if len(parts) >= 4 and parts[-2] == "_history":
        parts = parts[:-2]
    if len(parts) < 2 or parts[-2] not in RESOURCE_TYPES:
        return None
    return f"{parts[-2]}/{parts[-1]}"


# --- dates ---------------------------------------------------------------------------------------------
_DATE = re.compile(
    r"^(?P<y>\d{4})(?:-(?P<m>\d{2})(?:-(?P<d>\d{2})"
    r"(?:T(?P<H>\d{2}):(?P<M>\d{2})(?::(?P<S>\d{2})(?:\.(?P<f>\d{1,9}))?)?(?P<tz>Z|[+-]\d{2}:\d{2})?)?)?)?$"
)
_PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le")


def date_range(text: str) -> tuple[datetime, datetime] | None:
    """[start, end) of a FHIR date, dateTime or instant at its own precision (no zone: UTC)."""
    match = _DATE.match(text)
    if match is None:
        return None
    g = match.groupdict()
    try:
        year = int(g["y"])
        if g["m"] is None:
            return datetime(year, 1, 1, tzinfo=UTC), datetime(year + 1, 1, 1, tzinfo=UTC)
        month = int(g["m"])
        if g["d"] is None:
            days = calendar.monthrange(year, month)[1]
            start = datetime(year, month, 1, tzinfo=UTC)
            return start, start + timedelta(days=days)
        day = datetime(year, month, int(g["d"]), tzinfo=UTC)
        if g["H"] is None:
            return day, day + timedelta(days=1)
        tz: timezone = UTC
        if g["tz"] and g["tz"] != "Z":
            sign = 1 if g["tz"][0] == "+" else -1
            hours, minutes = int(g["tz"][1:3]), int(g["tz"][4:6])
            tz = timezone(sign * timedelta(hours=hours, minutes=minutes))
        start = datetime(year, month, int(g["d"]), int(g["H"]), int(g["M"]), tzinfo=tz)
        if g["S"] is None:
            return start.astimezone(UTC), (start + timedelta(minutes=1)).astimezone(UTC)
        start = start.replace(second=int(g["S"]))
        if g["f"] is None:
            return start.astimezone(UTC), (start + timedelta(seconds=1)).astimezone(UTC)
        digits = g["f"]
        micro = int((digits + "000000")[:6])
        start = start.replace(microsecond=micro)
        width = timedelta(microseconds=10 ** max(0, 6 - len(digits)))
        return start.astimezone(UTC), (start + width).astimezone(UTC)
    except ValueError:
        return None


def _date_matches(prefix: str, wanted: tuple[datetime, datetime], value: Any) -> bool:
    if isinstance(value, dict):  # a Period: its start
        value = value.get("start")
    if not isinstance(value, str):
        return False
    found = date_range(value)
    if found is None:
        return False
    (lo, hi), (rlo, rhi) = wanted, found
    if prefix == "eq":
        return rlo >= lo and rhi <= hi
    if prefix == "ne":
        return not (rlo >= lo and rhi <= hi)
    if prefix == "gt":
        return rhi > hi
    if prefix == "ge":
        return rhi > lo
    if prefix == "lt":
        return rlo < lo
    return rlo < hi  # le


# --- strings and tokens --------------------------------------------------------------------------------
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


def _string_matches(modifier: str | None, wanted: str, value: Any) -> bool:
    target = _fold(wanted)
    for text in _strings(value):
        folded = _fold(text)
        if modifier == "exact":
            if text == wanted:
                return True
        elif modifier == "contains":
            if target in folded:
                return True
        elif folded.startswith(target):
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


def _token_matches(wanted: str, value: Any) -> bool:
    system, code = wanted.split("|", 1) if "|" in wanted else (None, wanted)
    for found_system, found_code in _codings(value):
        if system is None:
            system_ok = True
        elif system == "":  # |code: only codes without a system
            system_ok = found_system is None
        else:  # a plain code (status, gender) has its element's implicit system
            system_ok = found_system == system or (found_system is None and isinstance(value, str))
        if system_ok and (code == "" or code == found_code):
            return True
    return False


def _reference_matches(wanted: str, target: str | None, value: Any) -> bool:
    if not isinstance(value, dict) or not isinstance(value.get("reference"), str):
        return False
    key = reference_key(value["reference"])
    if key is None:
        return False
    found_type, found_id = key.split("/")
    if "/" in wanted:
        wanted_key = reference_key(wanted)
        return wanted_key == key
    return found_id == wanted and (target is None or found_type == target)


# --- the query -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Criterion:
    param: SearchParam
    modifier: str | None
    values: tuple[str, ...]
    """OR-ed; a date value keeps its prefix."""

    def matches(self, resource: dict[str, Any]) -> bool:
        found = [v for path in self.param.paths for v in element_values(resource, path)]
        if self.modifier == "missing":
            return all((not found) == (v == "true") for v in self.values)
        return any(self._one(value, found) for value in self.values)

    def _one(self, wanted: str, found: list[Any]) -> bool:
        kind = self.param.type
        if kind is ParamType.DATE:
            prefix, text = (wanted[:2], wanted[2:]) if wanted[:2] in _PREFIXES else ("eq", wanted)
            window = date_range(text)
            assert window is not None  # checked when parsed
            if prefix == "ne":
                return bool(found) and all(_date_matches("ne", window, v) for v in found)
            return any(_date_matches(prefix, window, v) for v in found)
        if kind is ParamType.STRING:
            return any(_string_matches(self.modifier, wanted, v) for v in found)
        if kind is ParamType.REFERENCE:
            target = self.modifier or self.param.target
            return any(_reference_matches(wanted, target, v) for v in found)
        return any(_token_matches(wanted, v) for v in found)


@dataclass(frozen=True)
class Include:
    param: SearchParam
    source_type: str
    target: str | None


@dataclass
class Query:
    resource_type: str
    criteria: list[Criterion] = field(default_factory=list)
    count: int = DEFAULT_COUNT
    offset: int = 0
    includes: list[Include] = field(default_factory=list)
    descending: bool | None = None
    """_sort on _lastUpdated: None = creation order."""
    summary_count: bool = False
    echo: list[tuple[str, str]] = field(default_factory=list)
    """The parameters applied, for the Bundle's self and next links (paging excluded)."""


def _modifiers_for(param: SearchParam) -> set[str]:
    allowed = {"missing"}
    if param.type is ParamType.STRING:
        allowed |= {"exact", "contains"}
    if param.type is ParamType.REFERENCE and param.target is None:
        allowed |= set(RESOURCE_TYPES)
    return allowed


def _int(name: str, text: str, low: int) -> int:
    if not re.fullmatch(r"\d{1,9}", text) or int(text) < low:
        raise BadRequest(f"{name} must be a whole number of at least {low}")
    return int(text)


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
        if name == "_count":
            query.count = min(_int("_count", raw, 0), MAX_COUNT)
        elif name == "_offset":
            query.offset = _int("_offset", raw, 0)
        elif name == "_summary":
            if raw != "count":
                raise BadRequest("only _summary=count is supported")
            query.summary_count = True
            query.echo.append((key, raw))
        elif name == "_sort":
            if raw not in ("_lastUpdated", "-_lastUpdated"):
                raise BadRequest("_sort supports _lastUpdated and -_lastUpdated")
            query.descending = raw.startswith("-")
            query.echo.append((key, raw))
        elif name == "_include":
            query.includes.append(_include(raw, resource_type, supported_includes or {resource_type: supported}))
            query.echo.append((key, raw))
        elif name in supported:
            param = supported[name]
            if modifier and modifier not in _modifiers_for(param):
                raise BadRequest(f"the modifier :{modifier[:30]} is not supported on {name}")
            values = tuple(v for v in raw.split(",") if v != "")
            if not values:
                raise BadRequest(f"{name} needs a value")
            if modifier == "missing" and any(v not in ("true", "false") for v in values):
                raise BadRequest(f"{name}:missing takes true or false")
            if param.type is ParamType.DATE and modifier != "missing":
                for value in values:
                    text = value[2:] if value[:2] in _PREFIXES else value
                    if date_range(text) is None:
                        raise BadRequest(f"{name}: {value[:40]} is not a FHIR date (prefixes eq ne gt ge lt le)")
            query.criteria.append(Criterion(param, modifier or None, values))
            query.echo.append((key, raw))
        else:
            unknown.append(key)
    if unknown and not lenient:
        names = ", ".join(sorted({u[:40] for u in unknown}))
        raise BadRequest(f"unknown or unsupported search parameter(s) on {resource_type}: {names}")
    return query


def _include(text: str, resource_type: str, supported: dict[str, dict[str, SearchParam]]) -> Include:
    parts = text.split(":")
    if len(parts) not in (2, 3) or parts[0] != resource_type:
        raise BadRequest(f"_include must be {resource_type}:param[:Type]")
    param = supported.get(resource_type, {}).get(parts[1])
    if param is None or param.type is not ParamType.REFERENCE:
        raise BadRequest(f"_include={text[:60]} is not supported")
    target = parts[2] if len(parts) == 3 else None
    if target is not None and target not in RESOURCE_TYPES:
        raise BadRequest(f"_include target {target[:40]} is not served here")
    return Include(param, resource_type, target)


def run(store: Store, query: Query) -> list[Version]:
    """Every matching current version, in the query's order."""
    matches = [v for v in store.live(query.resource_type) if all(c.matches(v.resource or {}) for c in query.criteria)]
    if query.descending is not None:
        matches.sort(key=lambda v: v.last_updated, reverse=query.descending)
    return matches


def included(store: Store, page: list[Version], includes: list[Include]) -> list[Version]:
    """The resources the page's entries point at through the _include parameters (each once, not the
    page's own)."""
    seen = {v.reference for v in page}
    found: list[Version] = []
    for include in includes:
        for version in page:
            for path in include.param.paths:
                for value in element_values(version.resource or {}, path):
                    ref = value.get("reference") if isinstance(value, dict) else None
                    key = reference_key(ref) if isinstance(ref, str) else None
                    if key is None or key in seen:
                        continue
                    target_type, target_id = key.split("/")
                    if include.target is not None and target_type != include.target:
                        continue
                    if store.exists(target_type, target_id):
                        seen.add(key)
                        found.append(store.read(target_type, target_id))
    return found
