"""Console audit records (type ``console``), written by the one audit writer (service.audit).

Subtypes: sign-in, sign-in-failed, lockout, sign-out, refused (a 401/403 of a signed-in or signed-out
request), view (a page showing a participant's data: detail ``patients``), and the actions (e.g.
deadletters-replay, user-add). The agent is ``console:<username>``; no password and no PHI in
``detail`` beyond the record ids the audit store is the protected place for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncConnection

from service.audit import AuditRecord, write
from service.audit.record import Action, Outcome
from service.store import Database

if TYPE_CHECKING:
    from .security import CurrentUser


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
