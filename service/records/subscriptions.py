"""Subscription resources (R5 Backport IG 1.1.0 profile on R4): checked, stored, read back.

What a client may send: criteria = a topic canonical PeerLink serves (``subscription_topics``), filters
in ``_criteria`` (backport-filter-criteria), a rest-hook channel to an HTTPS endpoint (plain HTTP on
loopback only, for development), payload content (backport-payload-content: empty, id-only,
full-resource), heartbeat period, timeout, max count and channel headers. Every refusal names the
element (OperationOutcome.issue.expression)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from service.domain.errors import BadRequest
from service.store.tables import subscription_events, subscriptions

from .subscription_topics import Filter, Topic, catalog, parse_criteria

BACKPORT = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/"
PROFILE = BACKPORT + "backport-subscription"
EXT_FILTER = BACKPORT + "backport-filter-criteria"
EXT_CONTENT = BACKPORT + "backport-payload-content"
EXT_HEARTBEAT = BACKPORT + "backport-heartbeat-period"
EXT_TIMEOUT = BACKPORT + "backport-timeout"
EXT_MAX_COUNT = BACKPORT + "backport-max-count"
CONTENTS = ("empty", "id-only", "full-resource")
CLIENT_STATUSES = ("requested", "off")
"""What a client may ask for; active and error are the server's to set (after the handshake)."""
DEFAULT_TIMEOUT, MAX_TIMEOUT = 10, 60
DEFAULT_MAX_COUNT, MAX_MAX_COUNT = 20, 100
MIN_HEARTBEAT = 1
MAX_RETRY_HOURS = 168
RETRY_HOURS = "/StructureDefinition/subscription-retry-hours"
"""PeerLink's channel extension (under the program's identifier system): how many hours a notification
is retried before it is dead-lettered (valueUnsignedInt, 1 to 168); the deployment's horizon without it."""


@dataclass(frozen=True)
class Parsed:
    topic: Topic
    topic_canonical: str
    filters: list[Filter]
    endpoint: str
    headers: list[str]
    content: str
    heartbeat_seconds: int | None
    timeout_seconds: int
    max_count: int
    retry_hours: int | None
    end_at: datetime | None
    status: str
    resource: dict[str, Any]


def _bad(detail: str, expression: str) -> BadRequest:
    return BadRequest(detail, errors=[{"expression": expression}])


def _ext(element: Any, url: str) -> list[dict[str, Any]]:
    found = element.get("extension", []) if isinstance(element, dict) else []
    return [e for e in found if isinstance(e, dict) and e.get("url") == url]


def _int_ext(channel: dict[str, Any], url: str, key: str, where: str, low: int, high: int | None) -> int | None:
    found = _ext(channel, url)
    if not found:
        return None
    value = found[0].get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < low or (high is not None and value > high):
        raise _bad(f"{where} must be {key} from {low}{f' to {high}' if high else ''}", where)
    return value


def loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_endpoint(endpoint: Any) -> str:
    where = "Subscription.channel.endpoint"
    if not isinstance(endpoint, str) or not endpoint:
        raise _bad("a rest-hook channel needs an endpoint", where)
    parts = urlsplit(endpoint)
    if parts.scheme == "https" and parts.hostname:
        return endpoint
    if parts.scheme == "http" and parts.hostname and loopback(parts.hostname):
        return endpoint
    raise _bad("the endpoint must be an https:// URL (http:// only on loopback, for development)", where)


def retry_extension(program_system: str) -> str:
    return program_system.rstrip("/") + RETRY_HOURS


def parse(body: Any, base_url: str, program_system: str) -> Parsed:
    """A Subscription resource as a client sent it, checked; BadRequest names the element at fault."""
    if not isinstance(body, dict) or body.get("resourceType") != "Subscription":
        raise _bad("the body must be a Subscription resource", "Subscription")
    status = body.get("status", "requested")
    if status not in CLIENT_STATUSES:
        raise _bad(f"status must be one of {', '.join(CLIENT_STATUSES)} (the server activates)", "Subscription.status")
    criteria = body.get("criteria")
    topic = catalog().by_canonical(criteria, base_url) if isinstance(criteria, str) else None
    if topic is None:
        raise _bad(
            "criteria must be the canonical of a topic this server lists (CapabilityStatement)", "Subscription.criteria"
        )
    filters: list[Filter] = []
    for extension in _ext(body.get("_criteria"), EXT_FILTER):
        try:
            filters += parse_criteria(topic, str(extension.get("valueString", "")))
        except ValueError as error:
            raise _bad(str(error), "Subscription._criteria.extension") from None
    channel = body.get("channel")
    if not isinstance(channel, dict) or channel.get("type") != "rest-hook":
        raise _bad("only the rest-hook channel is supported", "Subscription.channel.type")
    endpoint = check_endpoint(channel.get("endpoint"))
    payload = channel.get("payload", "application/fhir+json")
    if payload not in ("application/fhir+json", "application/json"):
        raise _bad("payload must be application/fhir+json", "Subscription.channel.payload")
    contents = _ext(channel.get("_payload"), EXT_CONTENT)
    content = contents[0].get("valueCode") if contents else "id-only"
    if content not in CONTENTS:
        raise _bad(f"payload content must be one of {', '.join(CONTENTS)}", "Subscription.channel._payload.extension")
    headers = channel.get("header", [])
    if not isinstance(headers, list) or not all(isinstance(h, str) and ":" in h and "\n" not in h for h in headers):
        raise _bad("each channel header must read 'Name: value'", "Subscription.channel.header")
    heartbeat = _int_ext(
        channel, EXT_HEARTBEAT, "valueUnsignedInt", "Subscription.channel.extension", MIN_HEARTBEAT, None
    )
    timeout = _int_ext(channel, EXT_TIMEOUT, "valueUnsignedInt", "Subscription.channel.extension", 1, MAX_TIMEOUT)
    max_count = _int_ext(channel, EXT_MAX_COUNT, "valuePositiveInt", "Subscription.channel.extension", 1, MAX_MAX_COUNT)
    retry_hours = _int_ext(
        channel,
        retry_extension(program_system),
        "valueUnsignedInt",
        "Subscription.channel.extension",
        1,
        MAX_RETRY_HOURS,
    )
    end_at = None
    if body.get("end") is not None:
        try:
            end_at = datetime.fromisoformat(str(body["end"]).replace("Z", "+00:00"))
        except ValueError:
            raise _bad("end must be an instant", "Subscription.end") from None
        if end_at.tzinfo is None:
            raise _bad("end must carry a time zone", "Subscription.end")
    return Parsed(
        topic,
        str(criteria),
        filters,
        endpoint,
        list(headers),
        content,
        heartbeat,
        timeout or DEFAULT_TIMEOUT,
        max_count or DEFAULT_MAX_COUNT,
        retry_hours,
        end_at,
        status,
        body,
    )


def _values(parsed: Parsed) -> dict[str, Any]:
    return {
        "status": parsed.status,
        "topic": parsed.topic_canonical,
        "topic_key": parsed.topic.key,
        "filters": [{"type": f.resource_type, "param": f.param, "values": list(f.values)} for f in parsed.filters],
        "endpoint": parsed.endpoint,
        "headers": parsed.headers,
        "content": parsed.content,
        "heartbeat_seconds": parsed.heartbeat_seconds,
        "timeout_seconds": parsed.timeout_seconds,
        "max_count": parsed.max_count,
        "retry_hours": parsed.retry_hours,
        "end_at": parsed.end_at,
        "resource": parsed.resource,
        "error": None,
    }


async def create(
    conn: AsyncConnection,
    subscription_id: str,
    program_id: str,
    client_id: str | None,
    organization: str | None,
    parsed: Parsed,
    now: datetime,
) -> None:
    await conn.execute(
        insert(subscriptions).values(
            id=subscription_id,
            program_id=program_id,
            client_id=client_id,
            organization=organization,
            events_count=0,
            version_id=1,
            created_at=now,
            updated_at=now,
            **_values(parsed),
        )
    )


async def replace(conn: AsyncConnection, pk: int, version: int, parsed: Parsed, now: datetime) -> None:
    """An update: the channel or filters changed; a requested status asks for a new handshake."""
    await conn.execute(
        update(subscriptions)
        .where(subscriptions.c.pk == pk)
        .values(version_id=version + 1, updated_at=now, claimed_until=None, **_values(parsed))
    )


async def remove(conn: AsyncConnection, pk: int) -> None:
    await conn.execute(delete(subscription_events).where(subscription_events.c.subscription_pk == pk))
    await conn.execute(delete(subscriptions).where(subscriptions.c.pk == pk))


async def get(conn: AsyncConnection, program_id: str, subscription_id: str, client_id: str | None) -> Any | None:
    """The row, when it is the program's and the client's own (a client sees only its subscriptions)."""
    s = subscriptions.c
    query = select(subscriptions).where(s.id == subscription_id, s.program_id == program_id)
    if client_id is not None:
        query = query.where(s.client_id == client_id)
    return (await conn.execute(query)).first()


async def listed(conn: AsyncConnection, program_id: str, client_id: str | None) -> list[Any]:
    s = subscriptions.c
    query = select(subscriptions).where(s.program_id == program_id).order_by(s.pk)
    if client_id is not None:
        query = query.where(s.client_id == client_id)
    return list(await conn.execute(query))


def instant(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def resource(row: Any, base_url: str) -> dict[str, Any]:
    """The Subscription as stored, with the server's id, meta, status and error."""
    body = {k: v for k, v in row.resource.items() if k not in ("id", "meta", "status", "error")}
    profiles = {PROFILE, *row.resource.get("meta", {}).get("profile", [])}
    out: dict[str, Any] = {
        "resourceType": "Subscription",
        "id": row.id,
        "meta": {"versionId": str(row.version_id), "lastUpdated": instant(row.updated_at), "profile": sorted(profiles)},
        **{k: v for k, v in body.items() if k != "resourceType"},
        "status": row.status,
    }
    if row.error:
        out["error"] = row.error
    return out
