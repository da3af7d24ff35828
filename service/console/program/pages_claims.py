"""/console/program/claims: claim readiness of the finished sessions of a period, each line ready or
blocked with every reason (the lines ``peerlink claims check`` and the readiness API show). For
program admins, supervisors and auditors; an audited view of the participants it lists."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from service.console.roles import Role
from service.console.security import CurrentUser, require_roles
from service.console.web import add_nav, render

from . import claims
from .common import day, payers, program_of, viewed

router = APIRouter(prefix="/claims")
READERS = frozenset({Role.PROGRAM_ADMIN, Role.SUPERVISOR, Role.AUDITOR})
Reader = Annotated[CurrentUser, require_roles(READERS)]
HOME = "/console/program/claims"

add_nav("Claim readiness", HOME, READERS, "Program")


@router.get("")
async def claim_readiness(
    request: Request,
    user: Reader,
    from_: Annotated[str | None, Query(alias="from", max_length=40)] = None,
    to: Annotated[str | None, Query(max_length=40)] = None,
    payer: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    database = request.app.state.database
    first_default, last_default = claims.default_period(datetime.now(UTC).date())
    first = day(from_, "from") or first_default
    last = day(to, "to") or last_default
    registry = payers(request)
    async with database.read() as conn:
        program = await program_of(conn, user)
        view = await claims.readiness(conn, program, registry, first, last, payer or None)
    await viewed(database, request, user, program, "claim-readiness", [line.participant_id for line in view.lines])
    context = {"title": "Claim readiness", "view": view, "payers": registry.ids}
    return render(request, "program/claims.html", context)
