"""Whose data a console user may see: a peer specialist, the participants on care teams they belong
to (a membership whose period has not ended); every other role that sees participants, the whole
program. Program screens call :func:`caseload` for lists and :func:`require_participant` before
showing one participant."""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from service.store.tables import care_team_members, participants

from .roles import CLINICAL_READERS, Role
from .security import ConsoleRefused, CurrentUser


def _current(data: dict[str, object], today: date) -> bool:
    period = data.get("period")
    end = period.get("end") if isinstance(period, dict) else None
    return not end or date.fromisoformat(str(end)) >= today


async def caseload(conn: AsyncConnection, user: CurrentUser, today: date | None = None) -> frozenset[str] | None:
    """The participant ids the user may see: None means every participant of their program; a peer
    specialist gets their own caseload; a role that sees no participant data gets the empty set."""
    if user.role not in CLINICAL_READERS:
        return frozenset()
    if user.role is not Role.PEER_SPECIALIST:
        return None
    if user.specialist_id is None:
        return frozenset()
    today = today or datetime.now(UTC).date()
    c = care_team_members.c
    query = select(c.participant_id, c.data).where(
        c.program_id == user.program_id, c.specialist_id == user.specialist_id
    )
    return frozenset(row.participant_id for row in await conn.execute(query) if _current(row.data or {}, today))


async def require_participant(conn: AsyncConnection, user: CurrentUser, participant_id: str) -> None:
    """Refuse (403) a participant outside the user's program or caseload, and any participant to a
    role that sees no participant data (the integrator)."""
    if user.role not in CLINICAL_READERS:
        raise ConsoleRefused(403, f"the {user.role.value} role does not see participants' records")
    owner = select(participants.c.program_id).where(participants.c.id == participant_id)
    if (await conn.execute(owner)).scalar() != user.program_id:
        raise ConsoleRefused(404, "no such participant in this program")
    allowed = await caseload(conn, user)
    if allowed is not None and participant_id not in allowed:
        raise ConsoleRefused(403, "this participant is not on your caseload")
