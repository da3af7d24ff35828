"""Subscription events, written by the change hub in the change's transaction, and the notification
Bundles they become (Subscriptions R5 Backport IG 1.1.0 on R4).

After the FHIR projection is refreshed, every resource version the change stored (``last_updated`` is
the change's instant) is matched against the program's active subscriptions: topic trigger, filters,
and the subscriber's data boundary (``boundary.visible``, the one consent decision). A match is an
event row with the subscription's next event number; the worker delivers it
(``service.exchange.subscription_delivery``)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import and_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from service.auth import boundary
from service.store.tables import fhir_resources, fhir_versions, subscription_events, subscriptions

from .subscription_topics import Filter, Topic, catalog, matches
from .subscriptions import BACKPORT, instant

STATUS_PROFILE = BACKPORT + "backport-subscription-status-r4"
LIVE = ("active",)
"""Subscriptions that get events (a requested one has not passed its handshake yet; off and error do not)."""


def filters_of(row: Any) -> list[Filter]:
    return [Filter(f["type"], f["param"], tuple(f["values"])) for f in row.filters]


def topic_of(row: Any) -> Topic:
    return catalog().topics[row.topic_key]


async def visible_now(conn: AsyncConnection, organization: str | None, program_id: str, rtype: str, rid: str) -> bool:
    """Whether the subscriber's organisation may see the resource today (consent and boundaries)."""
    condition = boundary.visible(organization, resource_type=rtype)
    r = fhir_resources.c
    query = select(r.pk).where(r.program_id == program_id, r.resource_type == rtype, r.resource_id == rid)
    if condition is not None:
        query = query.where(condition)
    return (await conn.execute(query.limit(1))).first() is not None


async def record(conn: AsyncConnection, program_id: str, now: datetime) -> int:
    """Event rows for the resource versions stored at ``now`` that match an active subscription.
    Returns how many were written (a version already recorded for a subscription is not recorded again)."""
    s = subscriptions.c
    live = list(await conn.execute(select(subscriptions).where(s.program_id == program_id, s.status.in_(LIVE))))
    live = [row for row in live if row.end_at is None or row.end_at > now]
    if not live:
        return 0
    types = sorted({t for row in live for t in topic_of(row).resources})
    r = fhir_resources.c
    changed = list(
        await conn.execute(
            select(r.resource_type, r.resource_id, r.version_id, r.body).where(
                r.program_id == program_id, r.last_updated == now, r.resource_type.in_(types)
            )
        )
    )
    written = 0
    for version in changed:
        resource = orjson.loads(version.body)
        for row in live:
            if not matches(topic_of(row), filters_of(row), resource):
                continue
            if not await visible_now(conn, row.organization, program_id, version.resource_type, version.resource_id):
                continue
            written += await _add(conn, row.pk, version, now)
    return written


async def _add(conn: AsyncConnection, subscription_pk: int, version: Any, now: datetime) -> int:
    e = subscription_events.c
    seen = await conn.execute(
        select(e.pk).where(
            e.subscription_pk == subscription_pk,
            e.resource_type == version.resource_type,
            e.resource_id == version.resource_id,
            e.version_id == version.version_id,
        )
    )
    if seen.first() is not None:
        return 0
    # the row lock of this update orders concurrent writers: numbers are gapless and never reused
    number = (
        await conn.execute(
            update(subscriptions)
            .where(subscriptions.c.pk == subscription_pk)
            .values(events_count=subscriptions.c.events_count + 1)
            .returning(subscriptions.c.events_count)
        )
    ).scalar_one()
    await conn.execute(
        subscription_events.insert().values(
            subscription_pk=subscription_pk,
            event_number=number,
            resource_type=version.resource_type,
            resource_id=version.resource_id,
            version_id=version.version_id,
            occurred_at=now,
            state="pending",
            attempts=0,
            next_attempt_at=now,
        )
    )
    return 1


# --- notification Bundles -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Focus:
    """An event as it goes out: its row, and the resource version when the subscriber may see it now
    (None: withheld; the event still goes, with its number and time but without its focus)."""

    event: Any
    resource: dict[str, Any] | None


async def focus_of(conn: AsyncConnection, subscription: Any, event: Any) -> Focus:
    """The event's resource version, re-checked against the subscriber's boundary at send time."""
    if not await visible_now(
        conn, subscription.organization, subscription.program_id, event.resource_type, event.resource_id
    ):
        return Focus(event, None)
    v = fhir_versions.c
    found = (
        await conn.execute(
            select(v.body).where(
                and_(
                    v.program_id == subscription.program_id,
                    v.resource_type == event.resource_type,
                    v.resource_id == event.resource_id,
                    v.version_id == event.version_id,
                )
            )
        )
    ).first()
    return Focus(event, orjson.loads(found.body) if found is not None else None)


def status_parameters(subscription: Any, base_url: str, kind: str, events: list[Focus]) -> dict[str, Any]:
    """The SubscriptionStatus of R4, as Parameters (backport-subscription-status-r4)."""
    fhir = f"{base_url.rstrip('/')}/fhir"
    parameters: list[dict[str, Any]] = [
        {"name": "subscription", "valueReference": {"reference": f"{fhir}/Subscription/{subscription.id}"}},
        {"name": "topic", "valueCanonical": subscription.topic},
        {"name": "status", "valueCode": subscription.status},
        {"name": "type", "valueCode": kind},
        {"name": "events-since-subscription-start", "valueString": str(subscription.events_count)},
    ]
    for one in events:
        part: list[dict[str, Any]] = [
            {"name": "event-number", "valueString": str(one.event.event_number)},
            {"name": "timestamp", "valueInstant": instant(one.event.occurred_at)},
        ]
        if subscription.content != "empty" and one.resource is not None:
            reference = f"{fhir}/{one.event.resource_type}/{one.event.resource_id}"
            part.append({"name": "focus", "valueReference": {"reference": reference}})
        parameters.append({"name": "notification-event", "part": part})
    if subscription.error:
        parameters.append({"name": "error", "valueCodeableConcept": {"text": subscription.error}})
    return {
        "resourceType": "Parameters",
        "id": str(uuid.uuid4()),
        "meta": {"profile": [STATUS_PROFILE]},
        "parameter": parameters,
    }


def notification(
    subscription: Any, base_url: str, kind: str, events: list[Focus], now: datetime, bundle_type: str = "history"
) -> dict[str, Any]:
    """A notification Bundle: the status first, then each event's focus as the payload content says
    (empty: none; id-only: fullUrl and request; full-resource: the resource version too)."""
    fhir = f"{base_url.rstrip('/')}/fhir"
    status = status_parameters(subscription, base_url, kind, events)
    entries: list[dict[str, Any]] = [
        {
            "fullUrl": f"urn:uuid:{status['id']}",
            "resource": status,
            "request": {"method": "GET", "url": f"{fhir}/Subscription/{subscription.id}/$status"},
            "response": {"status": "200"},
        }
    ]
    if subscription.content != "empty":
        for one in events:
            if one.resource is None:
                continue
            entry: dict[str, Any] = {
                "fullUrl": f"{fhir}/{one.event.resource_type}/{one.event.resource_id}",
                "request": {"method": "PUT", "url": f"{one.event.resource_type}/{one.event.resource_id}"},
                "response": {"status": "200"},
            }
            if subscription.content == "full-resource":
                entry["resource"] = one.resource
            entries.append(entry)
    return {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "type": bundle_type,
        "timestamp": instant(now),
        "entry": entries,
    }
