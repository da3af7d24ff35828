"""/console/program/participants/{id}/disclosures: the accounting of disclosures of one participant
("who received my information"), a page made to be printed and handed over. For program admins,
supervisors and auditors (the privacy officer's task; the peer API asks the admin scope). Producing
it is audited as a view of the participant's data."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path as FilePath
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response

from service.console.caseload import require_participant
from service.console.security import CurrentUser, require_roles
from service.console.web import render

from . import disclosures
from .common import program_of, viewed
from .pages_participants import DISCLOSURE_READERS

router = APIRouter(prefix="/participants")
Reader = Annotated[CurrentUser, require_roles(DISCLOSURE_READERS)]
ParticipantId = Annotated[str, Path(pattern=r"^[A-Za-z0-9\-._]{1,64}$")]
DateText = Annotated[str | None, Query(max_length=40)]


@router.get("/{participant_id}/disclosures")
async def participant_disclosures(
    request: Request,
    participant_id: ParticipantId,
    user: Reader,
    from_: Annotated[str | None, Query(alias="from", max_length=40)] = None,
    to: DateText = None,
) -> Response:
    database = request.app.state.database
    now = datetime.now(UTC)
    start, end = disclosures.period(from_, to, now)
    async with database.read() as conn:
        await require_participant(conn, user, participant_id)
        program = await program_of(conn, user)
    archive = FilePath(request.app.state.settings.audit_archive_dir)
    page = await disclosures.disclosure_page(database, program, participant_id, start, end, archive)
    await viewed(
        database,
        request,
        user,
        program,
        "disclosures",
        [participant_id],
        returned=page.document["count"],
        period={"from": page.document["from"], "to": page.document["to"]},
    )
    context = {
        "title": "Who received my information",
        "participant_id": participant_id,
        "report": page,
        "from_value": from_ or "",
        "to_value": to or "",
    }
    return render(request, "program/disclosures.html", context)
