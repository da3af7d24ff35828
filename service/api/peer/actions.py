"""State changes that are not plain edits: referral transitions, note signing and amendment, revocation."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Request, Response

from service.api.access import AccessDep
from service.api.deps import DatabaseDep, IfMatchDep, ProgramDep, etag, refuse_body
from service.domain import Consent, Note, Program, Referral
from service.domain.note import AmendmentFields
from service.domain.referral import ReferralAction, TransitionRequest
from service.records import operations

from .records import changed

router = APIRouter()


def _tag(response: Response, version: int) -> None:
    response.headers["ETag"] = etag(version)


def _referral_route(action: ReferralAction, summary: str) -> None:
    @router.post(
        f"/referrals/{{record_id}}/{action.value}",
        response_model=Referral,
        tags=["referral"],
        summary=summary,
        operation_id=f"{action.value}_referral",
    )
    async def transition(
        request: Request,
        record_id: str,
        body: Annotated[TransitionRequest, Body()],
        program: ProgramDep,
        access: AccessDep,
        database: DatabaseDep,
        expected_version: IfMatchDep,
        response: Response,
    ) -> Referral:
        async with database.transaction() as conn:
            referral = await operations.transition_referral(
                conn, program.id, record_id, action, body, expected_version=expected_version
            )
            await changed(conn, request, access, program, referral, "peer-action", "U")
        _tag(response, referral.version)
        return referral


for _action, _summary in (
    (ReferralAction.RECEIVE, "Acknowledge receipt of a referral"),
    (ReferralAction.ACCEPT, "Accept a referral (optionally assigning a peer specialist)"),
    (ReferralAction.REJECT, "Reject a referral (reason required)"),
    (ReferralAction.START, "Start services on an accepted referral"),
    (ReferralAction.COMPLETE, "Complete a referral (outcome summary required)"),
    (ReferralAction.CANCEL, "Cancel an open referral (reason required)"),
):
    _referral_route(_action, _summary)


@router.post(
    "/notes/{record_id}/sign",
    response_model=Note,
    tags=["note"],
    summary="Sign a draft note (final)",
    operation_id="sign_note",
    dependencies=[Depends(refuse_body)],
)
async def sign_note(
    request: Request,
    record_id: str,
    program: ProgramDep,
    access: AccessDep,
    database: DatabaseDep,
    expected_version: IfMatchDep,
    response: Response,
) -> Note:
    async with database.transaction() as conn:
        note = await operations.sign_note(conn, program.id, record_id, expected_version=expected_version)
        await changed(conn, request, access, program, note, "peer-action", "U")
    _tag(response, note.version)
    return note


@router.post(
    "/notes/{record_id}/amend",
    response_model=Note,
    status_code=201,
    tags=["note"],
    summary="Amend a signed note: creates the correcting note",
    operation_id="amend_note",
)
async def amend_note(
    request: Request,
    record_id: str,
    body: Annotated[AmendmentFields, Body()],
    program: ProgramDep,
    access: AccessDep,
    database: DatabaseDep,
    expected_version: IfMatchDep,
    response: Response,
) -> Note:
    async with database.transaction() as conn:
        note = await operations.amend_note(conn, program.id, record_id, body, expected_version=expected_version)
        await changed(conn, request, access, program, note, "peer-action", "C")
    _tag(response, note.version)
    response.headers["Location"] = f"/peer/v1/notes/{note.id}"
    return note


@router.post(
    "/notes/{record_id}/retract",
    response_model=Note,
    tags=["note"],
    summary="Mark a note entered-in-error",
    operation_id="retract_note",
    dependencies=[Depends(refuse_body)],
)
async def retract_note(
    request: Request,
    record_id: str,
    program: ProgramDep,
    access: AccessDep,
    database: DatabaseDep,
    expected_version: IfMatchDep,
    response: Response,
) -> Note:
    async with database.transaction() as conn:
        note = await operations.retract_note(conn, program.id, record_id, expected_version=expected_version)
        await changed(conn, request, access, program, note, "peer-action", "U")
    _tag(response, note.version)
    return note


@router.post(
    "/consents/{record_id}/revoke",
    response_model=Consent,
    tags=["consent"],
    summary="Revoke a consent",
    operation_id="revoke_consent",
    dependencies=[Depends(refuse_body)],
)
async def revoke_consent(
    request: Request,
    record_id: str,
    program: ProgramDep,
    access: AccessDep,
    database: DatabaseDep,
    expected_version: IfMatchDep,
    response: Response,
) -> Consent:
    async with database.transaction() as conn:
        consent = await operations.revoke_consent(conn, program.id, record_id, expected_version=expected_version)
        await changed(conn, request, access, program, consent, "peer-action", "U")
    _tag(response, consent.version)
    return consent


@router.get(
    "/program",
    response_model=Program,
    tags=["program"],
    summary="The program this request acts for",
    operation_id="read_program",
)
async def read_program(program: ProgramDep) -> Program:
    return program
