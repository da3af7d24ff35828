"""A FHIR request as data (``FhirCall``: method, path below the FHIR base, query, headers, body) and
what an interaction answers (``Result``), so a transaction entry and an HTTP request travel the same
code; with the request-level rules: JSON only, ``Prefer``, ``If-Match`` ETags."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from service.domain.errors import BadRequest

from .outcome import NotAcceptable
from .store import Version

MAX_BODY_BYTES = 5 * 1024 * 1024
JSON_TYPES = {"application/fhir+json", "application/json", "application/json+fhir"}
_FORMATS = {"json", *JSON_TYPES}


@dataclass(frozen=True)
class Result:
    """What an interaction answers: a status, a document (or none) and headers."""

    status: int
    document: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    version: Version | None = None


@dataclass(frozen=True)
class FhirCall:
    method: str
    parts: tuple[str, ...]
    """The path below the FHIR base, split on /."""
    query: tuple[tuple[str, str], ...] = ()
    headers: dict[str, str] = field(default_factory=dict)
    """Lower-case names."""
    body: bytes = b""

    def header(self, name: str) -> str | None:
        return self.headers.get(name)


def accepts_json(call: FhirCall) -> None:
    """406 unless the client takes JSON (``_format`` or ``Accept``)."""
    for key, value in call.query:
        if key == "_format" and value.split(";")[0].strip().lower() not in _FORMATS:
            raise NotAcceptable("only JSON is served: _format=json or application/fhir+json")
    accept = call.header("accept")
    if accept:
        offered = {part.split(";")[0].strip().lower() for part in accept.split(",")}
        if not offered & (JSON_TYPES | {"*/*", "application/*"}):
            raise NotAcceptable("only application/fhir+json (or application/json) is served")


def wants_pretty(call: FhirCall) -> bool:
    return any(key == "_pretty" and value == "true" for key, value in call.query)


def prefer(call: FhirCall, key: str) -> str | None:
    for part in (call.header("prefer") or "").split(";"):
        name, _, value = part.strip().partition("=")
        if name.strip().lower() == key:
            return value.strip().strip('"').lower()
    return None


def etag_version(text: str) -> int:
    value = text.strip()
    value = value[2:] if value.startswith("W/") else value
    value = value.strip('"')
    if not value.isdigit():
        raise BadRequest('If-Match must be a version ETag such as W/"3"')
    return int(value)


def references(node: Any) -> Iterator[dict[str, Any]]:
    """Every Reference-like object (a dict with a string ``reference``) in a resource."""
    if isinstance(node, dict):
        if isinstance(node.get("reference"), str):
            yield node
        for value in node.values():
            yield from references(value)
    elif isinstance(node, list):
        for value in node:
            yield from references(value)
