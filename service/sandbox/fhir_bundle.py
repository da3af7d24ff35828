"""The entries of a transaction Bundle: each checked into a ``Plan`` (method, target, resource,
conditions), and each outcome told as a transaction-response entry."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from service.domain.errors import BadRequest, PeerLinkError

from .config import RESOURCE_TYPES
from .fhir_call import Result
from .store import Version, instant


@dataclass
class Plan:
    """One entry of a transaction Bundle: what it asks, and the target it resolves to."""

    index: int
    method: str
    resource_type: str
    target_id: str | None
    query: tuple[tuple[str, str], ...]
    resource: dict[str, Any] | None
    full_url: str | None
    if_none_exist: str | None
    if_match: str | None
    existing: Version | None = None


def at(index: int, step: Callable[[], Any]) -> Any:
    try:
        return step()
    except PeerLinkError as error:
        error.detail = f"Bundle.entry[{index}]: {error.detail}"
        raise


def plan_entry(index: int, entry: Any, allow: Callable[[str, str], None]) -> Plan:
    """One entry of a transaction Bundle, checked; ``allow`` refuses an interaction the caller may not make."""

    def fail(message: str) -> BadRequest:
        return BadRequest(f"Bundle.entry[{index}]: {message}")

    if not isinstance(entry, dict) or not isinstance(entry.get("request"), dict):
        raise fail("every entry needs a request (method and url)")
    request = entry["request"]
    method, url = request.get("method"), request.get("url")
    if method not in ("GET", "POST", "PUT", "DELETE") or not isinstance(url, str) or not url:
        raise fail("request.method must be GET, POST, PUT or DELETE, with a url")
    split = urlsplit(url)
    path = [p for p in split.path.split("/") if p]
    if not path or path[0] not in RESOURCE_TYPES:
        raise fail(f"request.url must name a type served here ({', '.join(RESOURCE_TYPES)})")
    resource = entry.get("resource")
    if method in ("POST", "PUT"):
        if not isinstance(resource, dict) or resource.get("resourceType") != path[0]:
            raise fail(f"a {method} entry carries a {path[0]} resource")
    else:
        resource = None
    shape_ok = {
        "POST": len(path) == 1 and not split.query,
        "PUT": len(path) == 2 and not split.query,
        "DELETE": len(path) == 2 and not split.query,
        "GET": len(path) in (1, 2),
    }[method]
    if not shape_ok:
        raise fail(f"{method} {url[:80]}: conditional updates and deletes are not supported")
    interaction = {
        "POST": "create",
        "PUT": "update",
        "DELETE": "delete",
        "GET": "search-type" if len(path) == 1 else "read",
    }[method]
    at(index, lambda: allow(path[0], interaction))
    if method == "PUT" and resource is not None and resource.get("id") != path[1]:
        raise fail("the resource's id must be the id in request.url")
    return Plan(
        index=index,
        method=method,
        resource_type=path[0],
        target_id=path[1] if len(path) == 2 else None,
        query=tuple(parse_qsl(split.query, keep_blank_values=True)),
        resource=resource,
        full_url=entry.get("fullUrl") if isinstance(entry.get("fullUrl"), str) else None,
        if_none_exist=request.get("ifNoneExist") if isinstance(request.get("ifNoneExist"), str) else None,
        if_match=request.get("ifMatch") if isinstance(request.get("ifMatch"), str) else None,
    )


def response_entry(result: Result, base: str) -> dict[str, Any]:
    reason = {200: "OK", 201: "Created", 204: "No Content"}[result.status]
    response: dict[str, Any] = {"status": f"{result.status} {reason}"}
    if result.version is not None:
        response["location"] = f"{result.version.reference}/_history/{result.version.version_id}"
        response["etag"] = result.version.etag
        response["lastModified"] = instant(result.version.last_updated)
    entry: dict[str, Any] = {}
    if result.version is not None:
        entry["fullUrl"] = f"{base}/{result.version.reference}"
    if result.document is not None:
        entry["resource"] = result.document
    entry["response"] = response
    return entry
