"""Bundles assembled from stored bytes: entries are spliced in, never parsed and re-serialized."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import orjson


def splice(
    bundle_type: str,
    entries: Iterable[tuple[str, bytes, dict[str, Any]]],
    *,
    total: int | None = None,
    links: Sequence[tuple[str, str]] = (),
) -> bytes:
    """A Bundle whose entries are ``(fullUrl, resource bytes, extra entry fields)``."""
    head: dict[str, Any] = {"resourceType": "Bundle", "type": bundle_type}
    if total is not None:
        head["total"] = total
    if links:
        head["link"] = [{"relation": relation, "url": url} for relation, url in links]
    parts = []
    for full_url, body, extra in entries:
        entry = b'{"fullUrl":' + orjson.dumps(full_url) + b',"resource":' + body
        if extra:
            entry += b"," + orjson.dumps(extra)[1:-1]
        parts.append(entry + b"}")
    return orjson.dumps(head)[:-1] + b',"entry":[' + b",".join(parts) + b"]}"
