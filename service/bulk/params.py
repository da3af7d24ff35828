"""The kick-off parameters of a bulk export (FHIR Bulk Data Access 2.0,
https://hl7.org/fhir/uv/bulkdata/export.html) as a plain, storable :class:`ExportRequest` (pure).

``_type``, ``_since``, ``_typeFilter`` and ``_outputFormat`` are honoured; every ``_typeFilter``
query is parsed by the one search engine (``service.fhir.search``) so an export filters exactly as a
search would. A parameter that cannot be honoured is a 400 naming it, unless the client said
``Prefer: handling=lenient``: then it is skipped and the manifest's ``error`` file says so.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import parse_qsl

from service.domain.errors import BadRequest, Forbidden
from service.fhir import search
from service.fhir.search_params import COMMON_PARAMS, SEARCH_PARAMS

Level = Literal["system", "patient", "group"]
NDJSON = "application/fhir+ndjson"
OUTPUT_FORMATS = frozenset({"application/fhir+ndjson", "application/ndjson", "ndjson"})
"""What ``_outputFormat`` may say (the spec's abbreviations included); all mean FHIR NDJSON."""
UNSUPPORTED = frozenset(
    {"_elements", "patient", "includeAssociatedData", "_until", "organizeOutputBy", "allowPartialManifests"}
)
"""Kick-off parameters the specification defines that this server does not honour."""
IGNORED = frozenset({"_format", "_pretty"})
_FILTER_START = re.compile(r",(?=[A-Z][A-Za-z]{1,63}\?)")
_INSTANT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})$")


def bad(detail: str, parameter: str) -> BadRequest:
    return BadRequest(detail, errors=[{"expression": parameter}])


@dataclass(frozen=True)
class ExportRequest:
    """What one export is to contain (kept as JSON in the job's row)."""

    level: Level
    types: list[str]
    since: str | None = None
    filters: dict[str, list[str]] = field(default_factory=dict)
    """Resource type -> its ``_typeFilter`` queries (``param=value&...``), OR-ed."""
    output_format: str = NDJSON
    group: str | None = None
    """The partner organisation whose Group is exported (level ``group``)."""
    notes: list[str] = field(default_factory=list)
    """What was skipped under lenient handling (the manifest's error file)."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ExportRequest:
        return cls(**data)

    @property
    def since_moment(self) -> datetime | None:
        return None if self.since is None else instant(self.since, "_since")


def instant(text: str, parameter: str) -> datetime:
    """A FHIR instant (a zone is required)."""
    if not _INSTANT.match(text.strip()):
        raise bad(f"{parameter} must be a FHIR instant with a time zone, e.g. 2026-01-01T00:00:00Z", parameter)
    try:
        return datetime.fromisoformat(text.strip().replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        raise bad(f"{parameter} is not a valid instant", parameter) from None


def _split_list(values: Iterable[str]) -> list[str]:
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def type_filter(text: str, lenient: bool, notes: list[str]) -> tuple[str, str] | None:
    """One ``Type?query`` of ``_typeFilter``: (type, query) after the search engine accepted the query."""
    resource_type, mark, query = text.partition("?")
    if not mark or resource_type not in SEARCH_PARAMS:
        raise bad("_typeFilter takes Type?search-query with a resource type this server serves", "_typeFilter")
    try:
        items = parse_qsl(query, keep_blank_values=True, max_num_fields=50, strict_parsing=True)
    except ValueError:
        raise bad("a _typeFilter query is not a valid query string", "_typeFilter") from None
    controls = [k for k, _ in items if k.startswith("_") and k.split(":")[0] not in COMMON_PARAMS]
    try:
        if controls:
            raise bad(f"_typeFilter takes search criteria only, not {controls[0][:40]}", "_typeFilter")
        parsed = search.parse(resource_type, items)
    except BadRequest as error:
        if not lenient:
            raise bad(f"_typeFilter on {resource_type}: {error.detail}", "_typeFilter") from None
        notes.append(f"_typeFilter {resource_type}?… was ignored: {error.detail}")
        return None
    if not parsed.criteria:
        raise bad("a _typeFilter query has no criteria", "_typeFilter")
    return resource_type, query


def parse(
    items: Sequence[tuple[str, str]],
    *,
    level: Level,
    readable: Iterable[str],
    lenient: bool = False,
    group: str | None = None,
) -> ExportRequest:
    """The kick-off request's parameters (query string, or a Parameters body flattened to pairs).
    ``readable``: the types the client's token may read (the export is limited to them)."""
    notes: list[str] = []
    allowed = [t for t in SEARCH_PARAMS if t in set(readable)]
    grouped: dict[str, list[str]] = {}
    for key, value in items:
        if key in ("_type", "_since", "_typeFilter", "_outputFormat"):
            grouped.setdefault(key, []).append(value)
        elif key in IGNORED:
            continue
        elif lenient:
            notes.append(f"the parameter {key[:40]} was ignored: this server does not support it")
        elif key in UNSUPPORTED:
            raise bad(f"this server does not support the parameter {key}", key)
        else:
            raise bad(f"unknown $export parameter {key[:40]}", key[:40])
    for single in ("_since", "_outputFormat"):
        if len(grouped.get(single, [])) > 1:
            raise bad(f"{single} may appear once", single)
    output_format = (grouped.get("_outputFormat") or [NDJSON])[0].strip()
    if output_format.split(";")[0].strip().lower() not in OUTPUT_FORMATS:
        raise bad("_outputFormat supports application/fhir+ndjson (or application/ndjson, ndjson)", "_outputFormat")
    since = grouped.get("_since", [None])[0]
    if since is not None:
        instant(since, "_since")
    types = list(dict.fromkeys(_split_list(grouped.get("_type", []))))
    for resource_type in types:
        if resource_type not in SEARCH_PARAMS:
            if not lenient:
                raise bad(f"_type names a type this server does not serve: {resource_type[:40]}", "_type")
            notes.append(f"_type {resource_type[:40]} was ignored: this server does not serve it")
        elif resource_type not in allowed:
            raise Forbidden(
                f"the token's scopes do not allow reading {resource_type} (needs system/{resource_type}.rs)"
            )
    types = [t for t in types if t in allowed] if types else allowed
    if not types:
        raise bad("the token's scopes allow reading no resource type this server exports", "_type")
    filters: dict[str, list[str]] = {}
    for value in grouped.get("_typeFilter", []):
        for text in _FILTER_START.split(value):
            found = type_filter(text.strip(), lenient, notes)
            if found is None:
                continue
            resource_type, query = found
            if resource_type not in types:
                raise bad(f"_typeFilter names {resource_type}, which the export does not include", "_typeFilter")
            filters.setdefault(resource_type, []).append(query)
    return ExportRequest(level, types, since, filters, NDJSON, group, notes)


def queries(request: ExportRequest, resource_type: str) -> list[search.SearchQuery]:
    """The parsed ``_typeFilter`` queries of one type (accepted at kick-off, so they parse again)."""
    return [
        search.parse(resource_type, parse_qsl(q, keep_blank_values=True))
        for q in request.filters.get(resource_type, [])
    ]


def from_parameters(body: Any) -> list[tuple[str, str]]:
    """A POST kick-off's Parameters resource as (name, value) pairs."""
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        raise bad("POST $export takes a Parameters resource", "Parameters")
    pairs: list[tuple[str, str]] = []
    for parameter in body.get("parameter") or []:
        if not isinstance(parameter, dict) or not isinstance(parameter.get("name"), str):
            raise bad("every parameter of the Parameters resource needs a name", "Parameters.parameter")
        name = parameter["name"]
        values = [v for k, v in parameter.items() if k.startswith("value") and isinstance(v, str)]
        if len(values) != 1:
            raise bad(f"the parameter {name[:40]} needs one string, code or instant value", name[:40])
        pairs.append((name, values[0]))
    return pairs
