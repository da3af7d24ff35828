"""/console/program/participants: the participants a user may see (a peer specialist: their own
caseload, service.console.caseload), and one participant's timeline with the outcome charts. Every
page is an audited view of the participants it shows; notes are shown only to the roles that read
clinical content (never the integrator, who does not open these pages at all)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response

from service.console.caseload import caseload, require_participant
from service.console.roles import CLINICAL_READERS, Role
from service.console.security import CurrentUser, require_roles
from service.console.web import add_nav, render
from service.domain.assessment import ChangeKind

from . import chart, participants, timeline
from .common import instruments, program_of, viewed

router = APIRouter(prefix="/participants")
Reader = Annotated[CurrentUser, require_roles(CLINICAL_READERS)]
ParticipantId = Annotated[str, Path(pattern=r"^[A-Za-z0-9\-._]{1,64}$")]
DISCLOSURE_READERS = frozenset({Role.PROGRAM_ADMIN, Role.SUPERVISOR, Role.AUDITOR})
HOME = "/console/program/participants"
CHANGE_WORDS = {
    ChangeKind.BASELINE: "baseline",
    ChangeKind.RELIABLE_IMPROVEMENT: "reliable improvement",
    ChangeKind.RELIABLE_DETERIORATION: "reliable deterioration",
    ChangeKind.NO_RELIABLE_CHANGE: "no reliable change",
    ChangeKind.UNKNOWN: "the instrument names no threshold for a reliable change",
}

add_nav("Participants", HOME, CLINICAL_READERS, "Program")


@router.get("")
async def participant_list(
    request: Request, user: Reader, cursor: Annotated[str | None, Query(max_length=200)] = None
) -> Response:
    database = request.app.state.database
    async with database.read() as conn:
        program = await program_of(conn, user)
        allowed = await caseload(conn, user)
        page = await participants.listing(
            conn, program.id, only=None if allowed is None else set(allowed), cursor=cursor
        )
    await viewed(database, request, user, program, "participants", [p.id for p in page.items])
    context = {
        "title": "Participants",
        "page": page,
        "own_caseload": allowed is not None,
    }
    return render(request, "program/participants.html", context)


@router.get("/{participant_id}")
async def participant_timeline(request: Request, participant_id: ParticipantId, user: Reader) -> Response:
    database = request.app.state.database
    notes = user.role in CLINICAL_READERS
    async with database.read() as conn:
        await require_participant(conn, user, participant_id)
        program = await program_of(conn, user)
        found = await timeline.timeline(conn, program.id, participant_id, instruments(request), notes=notes)
    await viewed(database, request, user, program, "timeline", [participant_id], notes=notes)
    charts = [(one, chart.outcome_svg(one, f"chart-{i}"), chart.describe(one)) for i, one in enumerate(found.series)]
    context = {
        "title": f"Participant {found.participant.name.text}",
        "timeline": found,
        "charts": charts,
        "today": datetime.now(UTC).date(),
        "may_see_disclosures": user.role in DISCLOSURE_READERS,
        "change_words": CHANGE_WORDS,
    }
    return render(request, "program/timeline.html", context)
