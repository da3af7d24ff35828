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
        """Records one notification Bundle; an error text when it is not one."""
        if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle" or bundle.get("type") != "history":
            return "a notification is a Bundle of type history"
        entries = bundle.get("entry") or []
        status = (entries[0].get("resource") if entries and isinstance(entries[0], dict) else None) or {}
        if status.get("resourceType") != "Parameters":
            return "the first entry of a notification is the SubscriptionStatus Parameters"
        params = status.get("parameter") or []
        values = {p.get("name"): p for p in params if isinstance(p, dict)}
        events: list[int] = []
        focus: list[str] = []
        for event in (p for p in params if isinstance(p, dict) and p.get("name") == "notification-event"):
            parts = {part.get("name"): part for part in event.get("part") or [] if isinstance(part, dict)}
            number = str((parts.get("event-number") or {}).get("valueString", ""))
            if not number.isdigit():
                return "a notification-event without an event-number"
            events.append(int(number))
            if reference := (parts.get("focus") or {}).get("valueReference", {}).get("reference"):
                focus.append(str(reference))
        for entry in entries[1:]:
            resource = entry.get("resource") if isinstance(entry, dict) else None
            if isinstance(resource, dict) and resource.get("resourceType") == "Task" and resource.get("id"):
                self.tasks[str(resource["id"])] = {
                    "status": resource.get("status"),
                    "identifier": [i.get("value") for i in resource.get("identifier") or [] if isinstance(i, dict)],
                    "last_updated": (resource.get("meta") or {}).get("lastUpdated"),
                }
        self.notifications.append(
            {
                "type": (values.get("type") or {}).get("valueCode"),
                "subscription": (values.get("subscription") or {}).get("valueReference", {}).get("reference"),
                "events_since_subscription_start": (values.get("events-since-subscription-start") or {}).get(
                    "valueString"
                ),
                "events": events,
                "focus": focus,
            }
        )
        return None


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
