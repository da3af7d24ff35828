"""What an EHR's answer means for a delivery: written, worth another try later (``Retryable``), or
refused for good (``Permanent``); and the ids an answer gives to what it created. Pure: no I/O."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import httpx
import orjson

RETRYABLE_STATUSES = frozenset({408, 409, 412, 423, 425, 429, 503})
"""Client-error statuses that say "not now" rather than "never" (every 5xx is retryable too)."""


class Retryable(Exception):
    def __init__(self, reason: str, retry_after: float | None = None, token: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
        self.token = token


class Permanent(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def json_of(response: httpx.Response) -> Any:
    """The body of an answer, parsed by orjson (raises ValueError when it is not JSON)."""
    return orjson.loads(response.content)


def outcome_text(response: httpx.Response) -> str:
    """Status and OperationOutcome issue codes only: an EHR's diagnostics may echo patient data."""
    try:
        body = json_of(response)
        codes = [i.get("code", "?") for i in body.get("issue", [])] if isinstance(body, dict) else []
    except ValueError:
        codes = []
    return f"HTTP {response.status_code}" + (f" ({', '.join(codes)})" if codes else "")


def retry_after(response: httpx.Response) -> float | None:
    """Seconds the answer's ``Retry-After`` asks for (a number or an HTTP date), if any."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            moment = datetime.strptime(value, "%a, %d %b %Y %H:%M:%S GMT")
            return max(0.0, moment.timestamp() - datetime.now().timestamp())
        except ValueError:
            return None


def check(response: httpx.Response) -> None:
    """Raise what a non-2xx answer means for the delivery."""
    status = response.status_code
    if 200 <= status < 300:
        return
    if status == 401:
        raise Retryable("HTTP 401 after a fresh token", token=True)
    if status >= 500 or status in RETRYABLE_STATUSES:
        raise Retryable(outcome_text(response), retry_after(response))
    raise Permanent(outcome_text(response))


def id_in_location(location: str, resource_type: str) -> str | None:
    """The id a ``Location`` (or an entry's ``response.location``) gives to a resource of the type."""
    match = re.search(rf"{resource_type}/([A-Za-z0-9\-.]{{1,64}})", location)
    return match.group(1) if match else None


def created_id(response: httpx.Response, resource_type: str) -> str:
    """The EHR's id of what a create made: from its Location, else from the body it returned."""
    location = response.headers.get("location") or response.headers.get("content-location") or ""
    found_in_location = id_in_location(location, resource_type)
    if found_in_location is not None:
        return found_in_location
    try:
        body = json_of(response)
    except ValueError:
        raise Retryable("the EHR's answer to a create is not JSON and names no Location") from None
    found = body.get("id") if isinstance(body, dict) else None
    if not isinstance(found, str):
        raise Retryable("the EHR's answer to a create names no id")
    return found
