"""The searchset Bundle: matches, then included resources, then any warning (lenient handling),
spliced from the stored bytes; the self and next links carry the parameters that took effect."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlencode

import orjson

from service.fhir.bundle import splice

from .cursor import encode_cursor
from .query import SearchQuery, SearchResult

MATCH: dict[str, Any] = {"search": {"mode": "match"}}
INCLUDE: dict[str, Any] = {"search": {"mode": "include"}}
"""An entry's search fields, one dict for every entry of the mode (spliced once per Bundle)."""

SUBSETTED = {
    "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
    "code": "SUBSETTED",
    "display": "Resource encoded in summary mode",
}


def subset(body: bytes, elements: tuple[str, ...]) -> bytes:
    """Only the requested top-level elements (plus resourceType, id, meta), tagged SUBSETTED."""
    resource = orjson.loads(body)
    keep = {"resourceType", "id", "meta", *elements}
    kept = {key: value for key, value in resource.items() if key in keep}
    meta = dict(kept.get("meta") or {})
    tags = [tag for tag in meta.get("tag") or [] if tag.get("code") != "SUBSETTED"]
    meta["tag"] = [*tags, SUBSETTED]
    kept["meta"] = meta
    return orjson.dumps(kept)


def _outcome(ignored: tuple[str, ...]) -> bytes:
    return orjson.dumps(
        {
            "resourceType": "OperationOutcome",
            "issue": [
                {
                    "severity": "warning",
                    "code": "not-supported",
                    "diagnostics": "ignored unsupported search parameters: " + ", ".join(n[:80] for n in ignored),
                    "expression": [n[:80] for n in ignored],
                }
            ],
        }
    )


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
        body = subset(match.body, query.elements) if query.elements is not None else match.body
        entries.append((f"{base}/{match.resource_type}/{match.resource_id}", body, MATCH))
    for item in result.included:
        entries.append((f"{base}/{item.resource_type}/{item.resource_id}", item.body, INCLUDE))
    if query.ignored:
        entries.append((f"urn:uuid:{uuid.uuid4()}", _outcome(query.ignored), {"search": {"mode": "outcome"}}))
    if not entries:  # FHIR arrays are never empty: no "entry" at all
        head: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset"}
        if result.total is not None:
            head["total"] = result.total
        head["link"] = [{"relation": relation, "url": link} for relation, link in links]
        return orjson.dumps(head)
    return splice("searchset", entries, total=result.total, links=links)
