"""Delivering subscription notifications (rest-hook): the handshake that activates a requested
Subscription, event notifications in event-number order, and heartbeats. Runs in the worker's loop,
beside the outbox; several workers may run: a subscription is leased to one at a time.

An event stays pending until its endpoint answers 2xx; a worker killed mid-send leaves it pending and
the subscription's lease runs out, so another worker (or the restarted one) sends it again — the
subscriber may see an event twice and tells by its number. Failures are retried with backoff (full
jitter) until the horizon (``subscription_retry_horizon_seconds``), then dead-lettered with the reason
and the subscription set to error. Consent and boundaries are checked again when a notification is
built (``subscription_events.focus_of``)."""

from __future__ import annotations

import logging
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
from sqlalchemy import and_, func, or_, select, update

from service.audit.record import AuditRecord
from service.audit.writer import write_many
from service.auth.boundary import compartment_patient
from service.records import subscription_events as events
from service.settings import Settings
from service.store import Database
from service.store.tables import subscription_events, subscriptions

log = logging.getLogger("peerlink.subscriptions")
FHIR_JSON = "application/fhir+json"


class Refused(Exception):
    """The endpoint did not answer 2xx (or could not be reached); the message is the reason kept."""


def backoff(attempts: int, settings: Settings) -> float:
    ceiling = min(
        settings.subscription_retry_cap_seconds, settings.subscription_retry_base_seconds * 2 ** min(attempts, 30)
    )
    return random.uniform(0, ceiling)  # noqa: S311 - jitter, not security


def _headers(row: Any) -> dict[str, str]:
    headers = {"Content-Type": FHIR_JSON}
    for line in row.headers:
        name, _, value = line.partition(":")
        headers[name.strip()] = value.strip()
    return headers


def disclosures(row: Any, focus: list[events.Focus], now: datetime) -> list[AuditRecord]:
    """A notification that carried resources (id-only or full-resource) discloses them: one audit
    record per participant, so the accounting of disclosures lists it for an outside organisation."""
    if row.content == "empty":
        return []
    by_patient: dict[str | None, list[str]] = {}
    for one in focus:
        if one.resource is not None:
            reference = f"{one.event.resource_type}/{one.event.resource_id}"
            by_patient.setdefault(compartment_patient(one.resource), []).append(reference)
    return [
        AuditRecord(
            "exchange",
            "subscription-notification",
            "E",
            "0",
            client_id=row.client_id,
            organization=row.organization,
            program_id=row.program_id,
            detail={
                "subscription": row.id,
                "interaction": "notification",
                **({"patients": [patient]} if patient else {}),
                "entities": sorted(set(references)),
            },
            recorded=now,
        )
        for patient, references in sorted(by_patient.items(), key=lambda item: item[0] or "")
    ]


class SubscriptionDelivery:
    def __init__(
        self, database: Database, settings: Settings, name: str, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self._database = database
        self._settings = settings
        self._name = name
        self._http = httpx.AsyncClient(transport=transport, follow_redirects=False)

    async def aclose(self) -> None:
        async with self._database.transaction() as conn:
            s = subscriptions.c
            await conn.execute(
                update(subscriptions).where(s.claimed_by == self._name).values(claimed_by=None, claimed_until=None)
            )
        await self._http.aclose()

    # --- what is due -------------------------------------------------------------------------------------
    async def _due(self, now: datetime) -> list[int]:
        s, e = subscriptions.c, subscription_events.c
        free = or_(s.claimed_until.is_(None), s.claimed_until < now)
        async with self._database.read() as conn:
            requested = await conn.execute(select(s.pk).where(s.status == "requested", free))
            pending = await conn.execute(
                select(func.distinct(e.subscription_pk))
                .select_from(subscription_events.join(subscriptions, s.pk == e.subscription_pk))
                .where(e.state == "pending", e.next_attempt_at <= now, s.status == "active", free)
            )
            beating = await conn.execute(
                select(s.pk, s.heartbeat_seconds, s.last_sent_at, s.end_at).where(
                    s.status == "active", or_(s.heartbeat_seconds.is_not(None), s.end_at.is_not(None)), free
                )
            )
            due = {r[0] for r in requested} | {r[0] for r in pending}
            for r in beating:
                ended = r.end_at is not None and r.end_at <= now
                beat = r.heartbeat_seconds is not None and (
                    r.last_sent_at is None or r.last_sent_at + timedelta(seconds=r.heartbeat_seconds) <= now
                )
                if ended or beat:
                    due.add(r.pk)
        return sorted(due)

    async def _claim(self, pk: int, now: datetime) -> Any | None:
        s = subscriptions.c
        until = now + timedelta(seconds=self._settings.subscription_lease_seconds)
        async with self._database.transaction() as conn:
            claimed = await conn.execute(
                update(subscriptions)
                .where(s.pk == pk, or_(s.claimed_until.is_(None), s.claimed_until < now))
                .values(claimed_by=self._name, claimed_until=until)
            )
            if not claimed.rowcount:
                return None
            return (await conn.execute(select(subscriptions).where(s.pk == pk))).first()

    async def _set(self, pk: int, **values: Any) -> None:
        async with self._database.transaction() as conn:
            await conn.execute(update(subscriptions).where(subscriptions.c.pk == pk).values(**values))

    # --- the loop's step ---------------------------------------------------------------------------------
    async def run_due(self) -> int:
        """Handshakes, notifications and heartbeats that are due. Returns how many requests went out."""
        now = datetime.now(UTC)
        sent = 0
        for pk in await self._due(now):
            row = await self._claim(pk, now)
            if row is None:
                continue
            try:
                sent += await self._serve(row, now)
            except Exception:  # one subscription's trouble must not stop the others
                log.exception("subscription delivery failed")
            finally:
                await self._set(pk, claimed_by=None, claimed_until=None)
        return sent

    async def _serve(self, row: Any, now: datetime) -> int:
        if row.end_at is not None and row.end_at <= now:
            await self._set(row.pk, status="off", updated_at=now)
            return 0
        if row.status == "requested":
            return await self._handshake(row, now)
        if await self._notify(row, now):
            return 1
        if row.heartbeat_seconds is not None and (
            row.last_sent_at is None or row.last_sent_at + timedelta(seconds=row.heartbeat_seconds) <= now
        ):
            try:
                await self._post(row, events.notification(row, self._settings.base_url, "heartbeat", [], now))
            except Refused as error:
                log.warning("subscription heartbeat refused: %s", error)
            await self._set(row.pk, last_sent_at=now)
            return 1
        return 0

    async def _post(self, row: Any, bundle: dict[str, Any]) -> None:
        try:
            answer = await self._http.post(
                row.endpoint, content=orjson.dumps(bundle), headers=_headers(row), timeout=row.timeout_seconds
            )
        except httpx.HTTPError as error:
            raise Refused(f"endpoint unreachable: {type(error).__name__}") from None
        if not 200 <= answer.status_code < 300:
            raise Refused(f"endpoint answered {answer.status_code}")

    async def _handshake(self, row: Any, now: datetime) -> int:
        try:
            await self._post(
                row,
                events.notification(row, self._settings.base_url, "handshake", [], now),
            )
        except Refused as error:
            await self._set(row.pk, status="error", error=f"handshake failed: {error}", updated_at=now)
            return 1
        await self._set(row.pk, status="active", error=None, last_sent_at=now, updated_at=now)
        return 1

    async def _notify(self, row: Any, now: datetime) -> bool:
        """The oldest pending events (up to max count), in order, once the first is due. True when sent or tried."""
        e = subscription_events.c
        async with self._database.read() as conn:
            pending = list(
                await conn.execute(
                    select(subscription_events)
                    .where(e.subscription_pk == row.pk, e.state == "pending")
                    .order_by(e.event_number)
                    .limit(row.max_count)
                )
            )
            if not pending or pending[0].next_attempt_at > now:
                return False
            # read after the events: its count covers every event number in the notification
            row = (await conn.execute(select(subscriptions).where(subscriptions.c.pk == row.pk))).one()
            focus = [await events.focus_of(conn, row, event) for event in pending]
        bundle = events.notification(row, self._settings.base_url, "event-notification", focus, now)
        pks = [event.pk for event in pending]
        try:
            await self._post(row, bundle)
        except Refused as error:
            await self._failed(row, pending, str(error), now)
            return True
        async with self._database.transaction() as conn:
            await conn.execute(update(subscription_events).where(e.pk.in_(pks)).values(state="sent", sent_at=now))
            if records := disclosures(row, focus, now):
                await write_many(conn, records)
            await conn.execute(update(subscriptions).where(subscriptions.c.pk == row.pk).values(last_sent_at=now))
        return True

    async def _failed(self, row: Any, pending: list[Any], reason: str, now: datetime) -> None:
        """Retried later with backoff; past the horizon, dead-lettered with the reason and the
        subscription set to error (a client puts it back to requested to resume)."""
        e = subscription_events.c
        seconds = row.retry_hours * 3600 if row.retry_hours else self._settings.subscription_retry_horizon_seconds
        horizon = timedelta(seconds=seconds)  # the subscription's own policy, else the deployment's
        dead = [ev.pk for ev in pending if now - ev.occurred_at > horizon]
        attempts = max(ev.attempts for ev in pending) + 1
        retry_at = now + timedelta(seconds=backoff(attempts, self._settings))
        async with self._database.transaction() as conn:
            alive = [ev.pk for ev in pending if ev.pk not in dead]
            if alive:
                await conn.execute(
                    update(subscription_events)
                    .where(e.pk.in_(alive))
                    .values(attempts=e.attempts + 1, next_attempt_at=retry_at, last_error=reason)
                )
            if dead:
                await conn.execute(
                    update(subscription_events)
                    .where(and_(e.pk.in_(dead)))
                    .values(state="dead", attempts=e.attempts + 1, last_error=reason)
                )
                await conn.execute(
                    update(subscriptions)
                    .where(subscriptions.c.pk == row.pk)
                    .values(status="error", error=f"notifications dead-lettered: {reason}", updated_at=now)
                )
        log.warning("subscription notification failed (attempt %d): %s", attempts, reason)
