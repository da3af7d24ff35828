"""The integrator's technical screens: clients and keys, subscriptions, bulk exports, the FHIR preview
of a stored record (never a note to the integrator), the audit chain's verification, and (for the
program admin) the console's users."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from sqlalchemy import select

from service.audit.verify import verify
from service.auth import clients
from service.fhir.render import LOADERS, fhir_resources
from service.records import subscriptions
from service.store import Database, RecordRepository
from service.store import kinds as k
from service.store.tables import bulk_exports

from . import accounts
from .audit import console_audit
from .roles import ADMINS, CLINICAL_READERS, TECHNICAL, Role
from .security import ConsoleRefused, CurrentUser, require_roles
from .web import add_nav, render, when

router = APIRouter()
Technical = Annotated[CurrentUser, require_roles(TECHNICAL)]
SECTION = "Integration"
add_nav("Clients and keys", "/console/integration/clients", TECHNICAL, SECTION)
add_nav("Subscriptions", "/console/integration/subscriptions", TECHNICAL, SECTION)
add_nav("Bulk exports", "/console/integration/exports", TECHNICAL, SECTION)
add_nav("FHIR preview", "/console/integration/preview", TECHNICAL, SECTION)
add_nav("Audit chain", "/console/integration/audit-chain", TECHNICAL, SECTION)
add_nav("Users", "/console/admin/users", ADMINS | {Role.AUDITOR}, "Administration")
PROFILES = ("generic", "epic", "oracle")
NOTE_KINDS = frozenset({"note"})
"""Kinds whose FHIR form is a note (DocumentReference): refused to whoever may not read notes."""


def _database(request: Request) -> Database:
    database: Database = request.app.state.database
    return database


@router.get("/integration/clients")
async def clients_page(request: Request, user: Technical) -> Response:
    async with _database(request).read() as conn:
        found = await clients.list_all(conn, user.program_id)
    rows = [
        {"client": c, "keys": c.jwks_url or f"{len((c.jwks or {}).get('keys', []))} key(s) registered"} for c in found
    ]
    signing = request.app.state.security.keys.summary()
    context = {"title": "Clients and keys", "rows": rows, "signing": signing}
    return render(request, "integration/clients.html", context)


@router.get("/integration/subscriptions")
async def subscriptions_page(request: Request, user: Technical) -> Response:
    async with _database(request).read() as conn:
        rows = await subscriptions.listed(conn, user.program_id, None)
    return render(request, "integration/subscriptions.html", {"title": "Subscriptions", "rows": rows})


@router.get("/integration/exports")
async def exports_page(request: Request, user: Technical) -> Response:
    b = bulk_exports.c
    query = select(bulk_exports).where(b.program_id == user.program_id).order_by(b.pk.desc()).limit(200)
    async with _database(request).read() as conn:
        rows = list(await conn.execute(query))
    return render(request, "integration/exports.html", {"title": "Bulk exports", "rows": rows})


def _patients(resources: list[dict[str, Any]]) -> list[str]:
    """The participants whose data the previewed resources hold (the audit record names them)."""
    found: dict[str, None] = {}
    for resource in resources:
        if resource.get("resourceType") == "Patient" and resource.get("id"):
            found[str(resource["id"])] = None
        for element in ("subject", "patient", "for"):
            value = resource.get(element)
            reference = value.get("reference") if isinstance(value, dict) else None
            if isinstance(reference, str) and reference.startswith("Patient/"):
                found[reference.removeprefix("Patient/")] = None
    return list(found)


@router.get("/integration/preview")
async def preview_page(
    request: Request,
    user: Technical,
    kind: Annotated[str | None, Query(max_length=40)] = None,
    record_id: Annotated[str | None, Query(alias="id", max_length=64)] = None,
    profile: Annotated[str, Query(max_length=20)] = "generic",
) -> Response:
    """The FHIR JSON a stored record maps to (service.fhir.render, as ``peerlink map``)."""
    context: dict[str, Any] = {
        "title": "FHIR preview",
        "kinds": list(LOADERS),
        "profiles": PROFILES,
        "kind": kind or "",
        "record_id": record_id or "",
        "profile": profile,
        "document": None,
        "error": None,
    }
    if not kind or not record_id:
        return render(request, "integration/preview.html", context)
    if kind not in LOADERS or profile not in PROFILES:
        context["error"] = "Choose a kind and a profile from the lists."
        return render(request, "integration/preview.html", context, status=400)
    may_read_notes = user.role in CLINICAL_READERS
    if kind in NOTE_KINDS and not may_read_notes:
        raise ConsoleRefused(403, f"the {user.role.value} role does not see notes")
    async with _database(request).read() as conn:
        program = await RecordRepository(k.PROGRAMS).get(conn, None, user.program_id)
        resources = await fhir_resources(conn, program, kind, record_id, profile)
    if not may_read_notes and any(r.get("resourceType") == "DocumentReference" for r in resources):
        raise ConsoleRefused(403, f"the {user.role.value} role does not see notes")
    entities = [f"{r.get('resourceType')}/{r.get('id')}" for r in resources]
    detail: dict[str, Any] = {"kind": kind, "record": record_id, "entities": entities}
    patients = _patients(resources)
    if patients:
        detail["patients"] = patients
    await console_audit(_database(request), request, user, "preview", detail=detail)
    context["document"] = orjson.dumps(resources[0] if len(resources) == 1 else resources, option=orjson.OPT_INDENT_2)
    return render(request, "integration/preview.html", context)


@router.get("/integration/audit-chain")
async def audit_chain_page(request: Request, user: Technical) -> Response:
    """Walk the audit chain now (service.audit.verify) and show the result."""
    report = await verify(_database(request))
    await console_audit(_database(request), request, user, "audit-verify", detail={"ok": report.ok})
    return render(request, "integration/audit_chain.html", {"title": "Audit chain", "report": report})


@router.get("/admin/users")
async def users_page(request: Request, user: Annotated[CurrentUser, require_roles(ADMINS, Role.AUDITOR)]) -> Response:
    async with _database(request).read() as conn:
        found = await accounts.list_all(conn, user.program_id)
    now = datetime.now(UTC)
    rows = []
    for account in found:
        locked = account.locked_until is not None and account.locked_until > now
        state = "disabled" if account.disabled else f"locked until {when(account.locked_until)}" if locked else "active"
        rows.append({**account.public(), "state": state})
    return render(request, "admin/users.html", {"title": "Console users", "rows": rows})
