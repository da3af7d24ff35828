"""Referral polling: the clinic's Tasks for the peer program at an EHR become referrals here.

``Task?owner=...&_lastUpdated=gt<cursor>&_include=Task:focus``, every page; each Task with its
ServiceRequest goes through the same inbound use case as a clinic's own POST (idempotent by the
clinic's identifiers, so a repeated or concurrent poll never duplicates a referral). The cursor is
the newest ``meta.lastUpdated`` seen, kept per connection.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from service import inbound
from service.domain import Program
from service.domain.errors import PeerLinkError
from service.store import Database
from service.store.tables import ehr_referrals

from . import connections
from .connections import EhrConnection
from .delivery import Permanent, Retryable, check
from .smart_client import SmartClient, TokenFailure

MAX_PAGES = 100


@dataclass
class PollResult:
    tasks: int = 0
    received: int = 0
    known: int = 0
    refused: list[str] = field(default_factory=list)
    patients: list[str] = field(default_factory=list)
    cursor: str | None = None


async def _get(client: SmartClient, url: str) -> dict[str, Any]:
    try:
        response = await client.request("GET", url)
    except TokenFailure as error:
        raise Retryable(str(error), token=True) from None
    except httpx.TransportError as error:
        raise Retryable(f"connection failed: {type(error).__name__}") from None
    check(response)
    try:
        body: dict[str, Any] = response.json()
    except ValueError:
        raise Retryable("the EHR's search answer is not valid JSON") from None
    return body


async def _with_patient(client: SmartClient, service_request: dict[str, Any]) -> dict[str, Any]:
    """The EHR's Patient, contained, so the inbound matching (by MRN) can use it."""
    reference = (service_request.get("subject") or {}).get("reference") or ""
    if not reference.startswith("Patient/"):
        return service_request
    patient = await _get(client, reference)
    contained = [c for c in service_request.get("contained", []) if c.get("id") != "subject"]
    return {
        **service_request,
        "contained": [*contained, {**patient, "id": "subject"}],
        "subject": {"reference": "#subject"},
    }


async def _with_requester(client: SmartClient, service_request: dict[str, Any], task: dict[str, Any]) -> dict[str, Any]:
    """The referring clinician and clinic, contained as a PractitionerRole (what the inbound mapping reads):
    an EHR names them by reference (ServiceRequest.requester, Task.requester), which mean nothing here."""
    requester = (service_request.get("requester") or {}).get("reference") or ""
    if not requester or requester.startswith("#"):
        return service_request
    practitioner: dict[str, Any] | None = None
    organization_ref = ""
    if requester.startswith("PractitionerRole/"):
        role = await _get(client, requester)
        practitioner_ref = (role.get("practitioner") or {}).get("reference") or ""
        practitioner = await _get(client, practitioner_ref) if practitioner_ref.startswith("Practitioner/") else None
        organization_ref = (role.get("organization") or {}).get("reference") or ""
    elif requester.startswith("Practitioner/"):
        practitioner = await _get(client, requester)
    elif requester.startswith("Organization/"):
        organization_ref = requester
    task_requester = (task.get("requester") or {}).get("reference") or ""
    if not organization_ref.startswith("Organization/") and task_requester.startswith("Organization/"):
        organization_ref = task_requester
    if not organization_ref.startswith("Organization/"):
        return service_request
    organization = await _get(client, organization_ref)
    acting: dict[str, Any] = {
        "resourceType": "PractitionerRole",
        "id": "requester",
        "organization": {"reference": "#requester-org"},
    }
    contained = [c for c in service_request.get("contained", []) if not str(c.get("id", "")).startswith("requester")]
    contained.append({**organization, "id": "requester-org"})
    if practitioner is not None:
        contained.append({**practitioner, "id": "requester-dr"})
        acting["practitioner"] = {"reference": "#requester-dr"}
    contained.append(acting)
    return {**service_request, "contained": contained, "requester": {"reference": "#requester"}}


def _record(conn: AsyncConnection, values: dict[str, Any]) -> Any:
    dialect = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    return dialect(ehr_referrals).values(**values).on_conflict_do_nothing(index_elements=["connection", "task_id"])


async def poll(database: Database, program: Program, connection: EhrConnection, client: SmartClient) -> PollResult:
    result = PollResult(cursor=connection.poll_cursor)
    owner = connection.task_owner
    first = f"Task?owner={owner}&_include=Task:focus&_count=50&_sort=_lastUpdated"
    if connection.poll_cursor:
        first += f"&_lastUpdated=gt{connection.poll_cursor}"
    url: str | None = first
    pages = 0
    while url and pages < MAX_PAGES:
        pages += 1
        bundle = await _get(client, url)
        resources = [e.get("resource") or {} for e in bundle.get("entry", [])]
        requests = {f"ServiceRequest/{r.get('id')}": r for r in resources if r.get("resourceType") == "ServiceRequest"}
        for task in (r for r in resources if r.get("resourceType") == "Task"):
            result.tasks += 1
            await _receive(database, program, connection, client, task, requests, result)
            updated = (task.get("meta") or {}).get("lastUpdated")
            if isinstance(updated, str) and (result.cursor is None or updated > result.cursor):
                result.cursor = updated
        url = next((link.get("url") for link in bundle.get("link", []) if link.get("relation") == "next"), None)
    async with database.transaction() as conn:
        await connections.save_cursor(conn, connection.name, result.cursor, datetime.now(UTC))
    return result


async def _receive(
    database: Database,
    program: Program,
    connection: EhrConnection,
    client: SmartClient,
    task: dict[str, Any],
    requests: dict[str, dict[str, Any]],
    result: PollResult,
) -> None:
    focus = (task.get("focus") or {}).get("reference") or ""
    service_request = requests.get(focus)
    if service_request is None and focus.startswith("ServiceRequest/"):
        service_request = await _get(client, focus)
    if service_request is None:
        result.refused.append(f"Task/{task.get('id')}: no ServiceRequest in focus")
        return
    service_request = await _with_patient(client, service_request)
    service_request = await _with_requester(client, service_request, task)

    async def work(conn: AsyncConnection) -> inbound.Outcome:
        outcome = await inbound.receive_referral(
            conn, program, {k: v for k, v in service_request.items() if k != "id"}, task=None
        )
        referral_id = await inbound.source_of(conn, program.id, "ServiceRequest", outcome.resource_id)
        assert referral_id is not None
        version = (task.get("meta") or {}).get("versionId")
        await conn.execute(
            _record(
                conn,
                {
                    "connection": connection.name,
                    "referral_id": referral_id,
                    "task_id": task["id"],
                    "task_version": version,
                },
            )
        )
        return outcome

    try:
        outcome = await inbound.run(database, work)
    except (Permanent, PeerLinkError) as error:
        result.refused.append(f"Task/{task.get('id')}: {getattr(error, 'detail', None) or error}")
        return
    if outcome.created:
        result.received += 1
    else:
        result.known += 1
