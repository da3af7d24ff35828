"""What every program screen needs: the user's program, the registries the gateway loaded at start,
the audit record of a view of participants' data, and the form and query values they read."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from typing import Any

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncConnection

from mappings.ids import fhir_id
from service.console.audit import console_audit, patients_of
from service.console.security import CurrentUser
from service.domain.billing import PayerRegistry
from service.domain.errors import BadRequest
from service.domain.instruments import Registry
from service.domain.matching.config import MatchingConfig
from service.domain.program import Program
from service.store import Database, RecordRepository
from service.store import kinds as k


async def program_of(conn: AsyncConnection, user: CurrentUser) -> Program:
    program: Program = await RecordRepository(k.PROGRAMS).get(conn, None, user.program_id)
    return program


def instruments(request: Request) -> Registry:
    registry: Registry = request.app.state.instruments
    return registry


def payers(request: Request) -> PayerRegistry:
    registry: PayerRegistry = request.app.state.payers
    return registry


def matching_config(request: Request) -> MatchingConfig:
    config: MatchingConfig = request.app.state.matching
    return config


def reference(program: Program, kind: str, record_id: str, resource_type: str) -> str:
    return f"{resource_type}/{fhir_id(program.identifier_system, kind, record_id)}"


async def viewed(
    target: Database | AsyncConnection,
    request: Request,
    user: CurrentUser,
    program: Program,
    page: str,
    participant_ids: Iterable[str],
    **detail: Any,
) -> None:
    """The AuditEvent of a page that showed these participants' data (nothing when it showed none)."""
    ids = sorted(set(participant_ids))
    if not ids:
        return
    body: dict[str, Any] = {"page": page, "patients": patients_of(program, ids), **detail}
    if len(ids) == 1:
        body["participant"] = ids[0]
    await console_audit(target, request, user, "view", detail=body)


def day(value: str | None, name: str) -> date | None:
    """A YYYY-MM-DD query value (empty: None); anything else is a 400 naming the field."""
    if value is None or not value.strip():
        return None
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise BadRequest(f"{name} must be a date (YYYY-MM-DD)") from None
