"""The sandbox EHR as a subscriber (Subscriptions R5 Backport IG 1.1.0 on R4): instead of polling, the
clinic learns that PeerLink's referral Task moved through rest-hook notifications.

- ``POST /sandbox/subscriber`` (admin) makes a fresh hook: the endpoint and the channel header (a
  bearer secret of this sandbox) to put in the Subscription created at PeerLink; what was received
  before is forgotten.
- ``POST /sandbox/notifications`` is the rest-hook endpoint: it answers the handshake and heartbeats
  with 200 and, for each event-notification, records the event numbers and, from the full-resource
  entries, each Task's new status. A request without the hook's header is refused (401).
- ``GET /sandbox/subscriber`` (admin) is what was received: every notification (type, subscription,
  events-since-subscription-start, event numbers, focus), the event numbers in order, and the last
  status of each Task.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from .outcome import operation_outcome

NOTIFICATIONS = "/sandbox/notifications"
KINDS = ("handshake", "heartbeat", "event-notification", "query-status", "query-event")


@dataclass
class Subscriber:
    secret: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    notifications: list[dict[str, Any]] = field(default_factory=list)
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)

    def renew(self) -> None:
        self.secret = secrets.token_urlsafe(24)
        self.notifications.clear()
        self.tasks.clear()

    def authorized(self, header: str | None) -> bool:
        return secrets.compare_digest(header or "", f"Bearer {self.secret}")

    def received(self) -> dict[str, Any]:
        events = [n for one in self.notifications for n in one["events"]]
        return {"notifications": self.notifications, "events": events, "tasks": self.tasks}

    def record(self, bundle: Any) -> str | None:
        """Records one notification Bundle; an error text when it is not one (nothing is recorded then)."""
        if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle" or bundle.get("type") != "history":
            return "a notification is a Bundle of type history"
        entries = _dicts(bundle.get("entry"))
        status = _dict(entries[0].get("resource")) if entries else {}
        if status.get("resourceType") != "Parameters":
            return "the first entry of a notification is the SubscriptionStatus Parameters"
        params = _dicts(status.get("parameter"))
        values = {p.get("name"): p for p in params}
        kind = values.get("type", {}).get("valueCode")
        if kind not in KINDS:
            return f"the SubscriptionStatus type must be one of {', '.join(KINDS)}"
        events: list[int] = []
        focus: list[str] = []
        for event in (p for p in params if p.get("name") == "notification-event"):
            parts = {part.get("name"): part for part in _dicts(event.get("part"))}
            number = parts.get("event-number", {}).get("valueString")
            if not isinstance(number, str) or not number.isdigit():
                return "each notification-event has an event-number"
            events.append(int(number))
            if isinstance(reference := _dict(parts.get("focus", {}).get("valueReference")).get("reference"), str):
                focus.append(reference)
        tasks = {}
        for entry in entries[1:]:
            resource = _dict(entry.get("resource"))
            if resource.get("resourceType") == "Task" and isinstance(resource.get("id"), str):
                tasks[resource["id"]] = {
                    "status": resource.get("status"),
                    "identifier": [i.get("value") for i in _dicts(resource.get("identifier"))],
                    "last_updated": _dict(resource.get("meta")).get("lastUpdated"),
                }
        self.tasks.update(tasks)
        self.notifications.append(
            {
                "type": kind,
                "subscription": _dict(values.get("subscription", {}).get("valueReference")).get("reference"),
                "events_since_subscription_start": values.get("events-since-subscription-start", {}).get("valueString"),
                "events": events,
                "focus": focus,
            }
        )
        return None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [one for one in value if isinstance(one, dict)] if isinstance(value, list) else []


def mount(app: FastAPI, admin: list[Any]) -> Subscriber:
    subscriber = Subscriber()
    app.state.subscriber = subscriber

    @app.post("/sandbox/subscriber", dependencies=admin, summary="A fresh rest-hook for a Subscription at PeerLink")
    async def new_hook(request: Request) -> dict[str, Any]:
        subscriber.renew()
        root = app.state.sandbox.root(request)
        return {"endpoint": root + NOTIFICATIONS, "header": f"Authorization: Bearer {subscriber.secret}"}

    @app.get("/sandbox/subscriber", dependencies=admin, summary="What the rest-hook received")
    async def received() -> dict[str, Any]:
        return subscriber.received()

    @app.post(NOTIFICATIONS, summary="Rest-hook endpoint: handshake, heartbeat and event notifications")
    async def notification(request: Request) -> Response:
        if not subscriber.authorized(request.headers.get("authorization")):
            return JSONResponse(operation_outcome("security", "not this hook's Authorization"), status_code=401)
        try:
            bundle = await request.json()
        except ValueError:
            bundle = None
        error = subscriber.record(bundle)
        if error:
            return JSONResponse(operation_outcome("invalid", error), status_code=400)
        return Response(status_code=200)

    return subscriber
