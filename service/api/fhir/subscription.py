"""/fhir/Subscription: create, read, search (own), update, delete, ``$status`` and ``$events``
(Subscriptions R5 Backport IG 1.1.0 on R4). The checks and storage are ``service.records.subscriptions``;
events and notification Bundles are ``service.records.subscription_events``.

A client may subscribe only to what it may read: its scopes must allow reading every resource type of
the topic; its data boundary (organisation) limits the events it gets, at event time and again at send
time (``boundary.visible``). A client sees and changes only its own subscriptions."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from sqlalchemy import select

from service.api import audit_trail
from service.api.access import Access, AccessDep
from service.api.deps import DatabaseDep, IfMatchDep, ProgramDep
from service.domain import Program
from service.domain.errors import BadRequest, Forbidden, NotFound, PreconditionFailed
from service.records import subscription_events as events
from service.records import subscriptions as store
from service.store.repository import new_id
from service.store.tables import subscription_events

from .read import FhirId
from .responses import PrettyDep, fhir_response
from .write import FHIR_BODY, RESOURCE_BODY, _json

router = APIRouter(tags=["FHIR"])
MAX_EVENTS = 500
"""Events one $events answer holds at most (ask again from the next number)."""
EventNumber = Annotated[str | None, Query(max_length=12, description="An event number (inclusive)")]


def _base(request: Request) -> str:
    return str(request.app.state.settings.base_url)


def _parse(request: Request, program: Program, access: Access, body: Any) -> store.Parsed:
    parsed = store.parse(body, _base(request), program.identifier_system)
    refused = [t for t in parsed.topic.resources if not access.may_read(t)]
    if refused:
        raise Forbidden(
            f"the token's scopes do not allow reading {', '.join(refused)}: "
            "a client subscribes only to what it may read",
            errors=[{"expression": "Subscription.criteria"}],
        )
    return parsed


def _answer(request: Request, row: Any, pretty: bool, status: int = 200) -> Response:
    body = orjson.dumps(store.resource(row, _base(request)))
    location = f"{_base(request)}/fhir/Subscription/{row.id}/_history/{row.version_id}" if status == 201 else None
    return fhir_response(
        body, pretty=pretty, status=status, version_id=row.version_id, last_updated=row.updated_at, location=location
    )


async def _own(conn: Any, program_id: str, subscription_id: str, access: Access) -> Any:
    row = await store.get(conn, program_id, subscription_id, access.client_id)
    if row is None:
        raise NotFound("no Subscription with that id")
    return row


@router.post(
    "/Subscription",
    summary="create (a topic-based Subscription, R5 Backport profile; starts requested, active after the handshake)",
    operation_id="fhir_subscription_create",
    openapi_extra=RESOURCE_BODY,
    response_class=Response,
    status_code=201,
)
async def create_subscription(
    request: Request, program: ProgramDep, access: AccessDep, database: DatabaseDep, pretty: PrettyDep
) -> Response:
    parsed = _parse(request, program, access, await _json(request, FHIR_BODY))
    subscription_id = new_id()
    async with database.transaction() as conn:
        now = datetime.now(UTC)
        await store.create(conn, subscription_id, program.id, access.client_id, access.organization, parsed, now)
        row = await _own(conn, program.id, subscription_id, access)
        await audit_trail.changing(
            conn, request, access, program.id, "create", "C", entities=[f"Subscription/{row.id}"]
        )
    return _answer(request, row, pretty, status=201)


@router.get("/Subscription/{subscription_id}", summary="read (Subscription)", operation_id="fhir_subscription_read")
async def read_subscription(
    request: Request,
    subscription_id: FhirId,
    program: ProgramDep,
    access: AccessDep,
    database: DatabaseDep,
    pretty: PrettyDep,
) -> Response:
    async with database.read() as conn:
        row = await _own(conn, program.id, subscription_id, access)
    return _answer(request, row, pretty)


@router.get(
    "/Subscription", summary="search-type (the client's own Subscriptions)", operation_id="fhir_subscription_search"
)
async def search_subscriptions(
    request: Request, program: ProgramDep, access: AccessDep, database: DatabaseDep, pretty: PrettyDep
) -> Response:
    async with database.read() as conn:
        rows = await store.listed(conn, program.id, access.client_id)
    base = _base(request)
    bundle = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(rows),
        "entry": [
            {
                "fullUrl": f"{base}/fhir/Subscription/{row.id}",
                "resource": store.resource(row, base),
                "search": {"mode": "match"},
            }
            for row in rows
        ],
    }
    return fhir_response(orjson.dumps(bundle), pretty=pretty)


@router.put(
    "/Subscription/{subscription_id}",
    summary="update (Subscription; status requested asks for a new handshake, off pauses it)",
    operation_id="fhir_subscription_update",
    openapi_extra=RESOURCE_BODY,
    response_class=Response,
)
async def update_subscription(
    request: Request,
    subscription_id: FhirId,
    program: ProgramDep,
    access: AccessDep,
    database: DatabaseDep,
    pretty: PrettyDep,
    if_match: IfMatchDep = None,
) -> Response:
    body = await _json(request, FHIR_BODY)
    if isinstance(body, dict) and body.get("id") not in (None, subscription_id):
        raise BadRequest("the body's id must be the id in the URL", errors=[{"expression": "Subscription.id"}])
    parsed = _parse(request, program, access, body)
    async with database.transaction() as conn:
        row = await _own(conn, program.id, subscription_id, access)
        if if_match is not None and if_match != row.version_id:
            raise PreconditionFailed("the Subscription changed since that version (If-Match)")
        await store.replace(conn, row.pk, row.version_id, parsed, datetime.now(UTC))
        row = await _own(conn, program.id, subscription_id, access)
        await audit_trail.changing(
            conn, request, access, program.id, "update", "U", entities=[f"Subscription/{row.id}"]
        )
    return _answer(request, row, pretty)


@router.delete(
    "/Subscription/{subscription_id}",
    summary="delete (Subscription and its events)",
    operation_id="fhir_subscription_delete",
    status_code=204,
    response_class=Response,
)
async def delete_subscription(
    request: Request, subscription_id: FhirId, program: ProgramDep, access: AccessDep, database: DatabaseDep
) -> Response:
    async with database.transaction() as conn:
        row = await _own(conn, program.id, subscription_id, access)
        await store.remove(conn, row.pk)
        await audit_trail.changing(
            conn, request, access, program.id, "delete", "D", entities=[f"Subscription/{row.id}"]
        )
    return Response(status_code=204)


@router.get(
    "/Subscription/{subscription_id}/$status",
    summary="$status: the Subscription's status (backport-subscription-status-r4 Parameters in a searchset)",
    operation_id="fhir_subscription_status",
)
async def subscription_status(
    request: Request,
    subscription_id: FhirId,
    program: ProgramDep,
    access: AccessDep,
    database: DatabaseDep,
    pretty: PrettyDep,
) -> Response:
    async with database.read() as conn:
        row = await _own(conn, program.id, subscription_id, access)
    status = events.status_parameters(row, _base(request), "query-status", [])
    bundle = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": 1,
        "entry": [{"fullUrl": f"urn:uuid:{status['id']}", "resource": status, "search": {"mode": "match"}}],
    }
    return fhir_response(orjson.dumps(bundle), pretty=pretty)


def _number(value: str | None, name: str) -> int | None:
    if value is None or value == "":
        return None
    if not value.isdigit():
        raise BadRequest(f"{name} must be an event number", errors=[{"expression": name}])
    return int(value)


@router.get(
    "/Subscription/{subscription_id}/$events",
    summary="$events: past notifications by event number, so a subscriber can fill a gap",
    operation_id="fhir_subscription_events",
)
async def subscription_events_operation(
    request: Request,
    subscription_id: FhirId,
    program: ProgramDep,
    access: AccessDep,
    database: DatabaseDep,
    pretty: PrettyDep,
    events_since: Annotated[EventNumber, Query(alias="eventsSinceNumber")] = None,
    events_until: Annotated[EventNumber, Query(alias="eventsUntilNumber")] = None,
    content: Annotated[str | None, Query(max_length=20, description="empty, id-only or full-resource")] = None,
) -> Response:
    since = _number(events_since, "eventsSinceNumber") or 1
    until = _number(events_until, "eventsUntilNumber")
    if content is not None and content not in store.CONTENTS:
        raise BadRequest(f"content must be one of {', '.join(store.CONTENTS)}", errors=[{"expression": "content"}])
    e = subscription_events.c
    async with database.read() as conn:
        row = await _own(conn, program.id, subscription_id, access)
        query = select(subscription_events).where(e.subscription_pk == row.pk, e.event_number >= since)
        if until is not None:
            query = query.where(e.event_number <= until)
        found = list(await conn.execute(query.order_by(e.event_number).limit(MAX_EVENTS)))
        focus = [await events.focus_of(conn, row, event) for event in found]
    view = SimpleNamespace(**{**row._asdict(), **({"content": content} if content is not None else {})})
    bundle = events.notification(view, _base(request), "query-event", focus, datetime.now(UTC))
    return fhir_response(orjson.dumps(bundle), pretty=pretty)
