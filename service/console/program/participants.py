"""The participants a console user may list: every participant of the program, a page at a time, or
only those of a peer specialist's caseload."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncConnection

from service.domain.participant import Participant
from service.store import RecordRepository
from service.store import kinds as k

PAGE = 50
REPOSITORY: RecordRepository[Participant] = RecordRepository(k.PARTICIPANTS)


@dataclass(frozen=True)
class ParticipantPage:
    items: list[Participant]
    next_cursor: str | None


async def listing(
    conn: AsyncConnection, program_id: str, *, only: set[str] | None, cursor: str | None = None
) -> ParticipantPage:
    """A page of the program's participants; with ``only``, just those ids (a caseload, one page)."""
    if only is not None:
        found = await REPOSITORY.find_all(conn, program_id, "id", sorted(only))
        return ParticipantPage(sorted(found, key=lambda p: (p.name.family, p.name.text, p.id)), None)
    page = await REPOSITORY.list(conn, program_id, limit=PAGE, cursor=cursor)
    return ParticipantPage(page.items, page.next_cursor)


async def participant(conn: AsyncConnection, program_id: str, participant_id: str) -> Participant:
    """The participant (NotFound when the program has none with this id)."""
    return await REPOSITORY.get(conn, program_id, participant_id)
