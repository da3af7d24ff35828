"""/console/program/referrals: the referral inbox, one referral with its match suggestions, and the
accept (assign a specialist, with the reason) and reject forms. Program admins and supervisors act;
the auditor reads. Every page is an audited view; every step an audited change in its transaction."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Form, Path, Request
from fastapi.responses import Response

from service.console.audit import console_audit, patients_of
from service.console.roles import Role
from service.console.security import CurrentUser, require_roles
from service.console.web import add_nav, redirect, render
from service.domain.errors import PeerLinkError
from service.domain.program import Program
from service.domain.referral import Referral

from . import inbox
from .common import matching_config, program_of, reference, viewed

router = APIRouter(prefix="/referrals")
READERS = frozenset({Role.PROGRAM_ADMIN, Role.SUPERVISOR, Role.AUDITOR})
DECIDERS = frozenset({Role.PROGRAM_ADMIN, Role.SUPERVISOR})
Reader = Annotated[CurrentUser, require_roles(READERS)]
Decider = Annotated[CurrentUser, require_roles(DECIDERS)]
RecordId = Annotated[str, Path(pattern=r"^[A-Za-z0-9\-._]{1,64}$")]
Version = Annotated[int, Form(ge=1)]
Reason = Annotated[str, Form(max_length=4000)]
HOME = "/console/program/referrals"

add_nav("Referral inbox", HOME, READERS, "Program")


@router.get("")
async def referral_inbox(request: Request, user: Reader) -> Response:
    database = request.app.state.database
    async with database.read() as conn:
        program = await program_of(conn, user)
        items = await inbox.inbox(conn, program.id)
    await viewed(database, request, user, program, "referral-inbox", [i.referral.participant_id for i in items])
    return render(request, "program/inbox.html", {"title": "Referral inbox", "items": items})


async def _review_page(
    request: Request, user: CurrentUser, record_id: str, *, error: str | None = None, status: int = 200
) -> Response:
    database = request.app.state.database
    async with database.read() as conn:
        program = await program_of(conn, user)
        review = await inbox.review(conn, program, record_id, matching_config(request), datetime.now(UTC).date())
    await viewed(database, request, user, program, "referral", [review.referral.participant_id])
    context: dict[str, Any] = {
        "title": "Referral",
        "review": review,
        "may_decide": user.role in DECIDERS,
        "error": error,
        "done": request.query_params.get("done"),
    }
    return render(request, "program/referral.html", context, status=status)


@router.get("/{record_id}")
async def referral_review(request: Request, record_id: RecordId, user: Reader) -> Response:
    return await _review_page(request, user, record_id)


def _changed(program: Program, referral: Referral, *specialists: str) -> dict[str, Any]:
    entities = {reference(program, "referral", referral.id, "ServiceRequest")}
    entities |= {reference(program, "specialist", s, "Practitioner") for s in specialists}
    return {"patients": patients_of(program, [referral.participant_id]), "entities": sorted(entities)}


@router.post("/{record_id}/accept")
async def accept_referral(
    request: Request,
    record_id: RecordId,
    user: Decider,
    version: Version,
    specialist_id: Annotated[str, Form(max_length=64)] = "",
    reason: Reason = "",
) -> Response:
    now = datetime.now(UTC)
    if not specialist_id:
        return await _review_page(request, user, record_id, error="Choose a peer specialist.", status=422)
    try:
        async with request.app.state.database.transaction() as conn:
            program = await program_of(conn, user)
            done = await inbox.accept(
                conn,
                program,
                record_id,
                specialist_id,
                reason=reason,
                by=user.username,
                config=matching_config(request),
                expected_version=version,
                now=now,
            )
            detail = _changed(program, done.referral, specialist_id)
            detail["assignment"] = done.audit_detail(user.username)
            detail["reason"] = reason.strip()
            await console_audit(conn, request, user, "referral-accept", action="U", detail=detail)
    except PeerLinkError as error:
        return await _review_page(request, user, record_id, error=error.detail, status=error.status)
    return redirect(f"{HOME}/{record_id}?done=accepted")


@router.post("/{record_id}/reject")
async def reject_referral(
    request: Request, record_id: RecordId, user: Decider, version: Version, reason: Reason = ""
) -> Response:
    try:
        async with request.app.state.database.transaction() as conn:
            program = await program_of(conn, user)
            referral = await inbox.reject(
                conn,
                program.id,
                record_id,
                reason=reason,
                by=user.username,
                expected_version=version,
                now=datetime.now(UTC),
            )
            detail = {**_changed(program, referral), "reason": reason.strip()}
            await console_audit(conn, request, user, "referral-reject", action="U", detail=detail)
    except PeerLinkError as error:
        return await _review_page(request, user, record_id, error=error.detail, status=error.status)
    return redirect(f"{HOME}/{record_id}?done=rejected")
