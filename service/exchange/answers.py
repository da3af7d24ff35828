"""What an EHR's answer means for a delivery: written, worth another try later (``Retryable``), or
refused for good (``Permanent``); and the ids an answer gives to what it created. Pure: no I/O."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import httpx
import orjson

from .refusal import outcome_summary, refuses_bundles

RETRYABLE_STATUSES = frozenset({408, 409, 412, 423, 425, 429, 503})
"""Client-error statuses that say "not now" rather than "never" (every 5xx is retryable too)."""


class Refused(Exception):
    """Why a delivery did not go through; ``status`` and ``outcome`` are what the EHR answered (its HTTP
    status, its OperationOutcome's issues: ``refusal.outcome_summary``), when it answered."""

    def __init__(self, reason: str, status: int | None = None, outcome: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.outcome = outcome


class Retryable(Refused):
    def __init__(
        self,
        reason: str,
        retry_after: float | None = None,
        token: bool = False,
        *,
        status: int | None = None,
        outcome: str | None = None,
    ) -> None:
        super().__init__(reason, status, outcome)
        self.retry_after = retry_after
        self.token = token


class Permanent(Refused):
    pass


class BundleRefused(Permanent):
    """The EHR refuses transaction Bundles as such (``refusal.refuses_bundles``): the same writes go
    one by one."""


def json_of(response: httpx.Response) -> Any:
    """The body of an answer, parsed by orjson (raises ValueError when it is not JSON)."""
    return orjson.loads(response.content)


def body_of(response: httpx.Response) -> Any:
    """The parsed body of an answer, or None when it is not JSON."""
    try:
        return json_of(response)
    except ValueError:
        return None


def outcome_text(response: httpx.Response) -> str:
    """Status and OperationOutcome issue codes only (the reason logged and audited); the diagnostics go
    with the dead letter alone (``refused``)."""
    body = body_of(response)
    codes = [i.get("code", "?") for i in body.get("issue", [])] if isinstance(body, dict) else []
    return f"HTTP {response.status_code}" + (f" ({', '.join(codes)})" if codes else "")


def refused(response: httpx.Response, *, bundle: bool = False) -> Refused:
    """What a non-2xx answer means for the delivery: Retryable, Permanent, or (to a transaction
    Bundle) BundleRefused; each with the EHR's status and OperationOutcome."""
    status = response.status_code
    body = body_of(response)
    outcome = outcome_summary(body)
    if status == 401:
        return Retryable("HTTP 401 after a fresh token", token=True, status=status, outcome=outcome)
    if (status >= 500 and not (bundle and status == 501)) or status in RETRYABLE_STATUSES:
        return Retryable(outcome_text(response), retry_after(response), status=status, outcome=outcome)
    if bundle and refuses_bundles(status, body):
        return BundleRefused(outcome_text(response), status, outcome)
    return Permanent(outcome_text(response), status, outcome)


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


def check(response: httpx.Response, *, bundle: bool = False) -> None:
    """Raise what a non-2xx answer means for the delivery (``refused``)."""
    if not 200 <= response.status_code < 300:
        raise refused(response, bundle=bundle)


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
