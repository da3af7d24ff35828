"""Console audit records (type ``console``), written by the one audit writer (service.audit).

Subtypes: sign-in, sign-in-failed, lockout, sign-out, refused (a 401/403 of a signed-in or signed-out
request), view (a page showing a participant's data: detail ``patients``, their FHIR Patient ids:
:func:`patients_of`), and the actions (e.g.
deadletters-replay, user-add). The agent is ``console:<username>``; no password and no PHI in
``detail`` beyond the record ids the audit store is the protected place for.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncConnection

from mappings.ids import fhir_id
from service.audit import AuditRecord, write
from service.audit.record import Action, Outcome
from service.domain import Program
from service.store import Database

if TYPE_CHECKING:
    from .security import CurrentUser


def patients_of(program: Program, participant_ids: Iterable[str]) -> list[str]:
    """The FHIR Patient ids of participants, as ``detail["patients"]`` names them everywhere in the
    audit log (the accounting of disclosures and AuditEvent searches by patient find them so)."""
    return sorted({fhir_id(program.identifier_system, "participant", pid) for pid in participant_ids})


def agent(username: str | None) -> str | None:
    return f"console:{username}" if username else None


def record(
    request: Request,
    user: CurrentUser | None,
    subtype: str,
    *,
    action: Action = "R",
    outcome: Outcome = "0",
    detail: dict[str, Any] | None = None,
    username: str | None = None,
    program_id: str | None = None,
) -> AuditRecord:
    """The AuditRecord of a console event (``username``/``program_id`` when no user is signed in)."""
    who: dict[str, Any] = {"user": user.id, "role": user.role.value} if user is not None else {}
    return AuditRecord(
        "console",
        subtype,
        action,
        outcome,
        client_id=agent(user.username if user is not None else username),
        program_id=user.program_id if user is not None else program_id,
        address=request.client.host if request.client else None,
        detail={**who, "path": request.url.path, **(detail or {})},
    )


async def console_audit(
    target: Database | AsyncConnection,
    request: Request,
    user: CurrentUser | None,
    subtype: str,
    *,
    action: Action = "R",
    outcome: Outcome = "0",
    detail: dict[str, Any] | None = None,
) -> None:
    """Write a console AuditEvent: in the caller's transaction when given a connection (call it last,
    as service.audit.write says), else committed on its own before this returns."""
    await write(target, record(request, user, subtype, action=action, outcome=outcome, detail=detail))
