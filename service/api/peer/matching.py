"""Matching: ranked specialists for a referral with reasons, the assign step, and a batch proposal.

``GET /referrals/{id}/matches`` is audited as a read of the participant's referral;
``POST /referrals/{id}/assign`` as a change whose audit record carries the assignment, its rank and
score, whether it overrides the top match, and the reason given; ``POST /matching/plan`` as a query
naming the participants in the queue. The plan changes nothing.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from mappings.ids import fhir_id
from service.api import audit_trail
from service.api.access import Access, AccessDep
from service.api.deps import DatabaseDep, IfMatchDep, ProgramDep, etag, refuse_body
from service.audit import AuditRecord, write
from service.auth.scopes import Interaction
from service.domain import Program, Referral
from service.domain.common import LongText, RecordId, ShortText
from service.domain.match_fields import LivedExperience
from service.domain.matching.config import MatchingConfig, Weights
from service.domain.matching.plan import Plan
from service.domain.matching.score import Exclusion, Match
from service.records import matching

router = APIRouter(tags=["matching"])


class Matches(BaseModel):
    referral_id: str
    participant_id: str
    weights: Weights = Field(description="The program's factor weights used for this ranking.")
    wanted_areas: list[LivedExperience]
    matches: list[Match] = Field(description="Specialists who meet every hard constraint, best first.")
    excluded: list[Exclusion] = Field(description="The others, with the constraints they do not meet.")


class AssignRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    specialist_id: RecordId
    reason: Annotated[str, Field(min_length=1, max_length=2000)] = Field(
        description="Why this specialist (required; recorded on the referral and in the audit log)."
    )
    by: ShortText = Field(description="Who assigns (user or system name).")


class Assignment(BaseModel):
    referral: Referral
    match: Match = Field(description="The chosen specialist's match, with its explanation.")
    top_specialist_id: str
    override: bool = Field(description="True when the chosen specialist is not the top match.")
    reason: LongText


class PlannedAssignment(BaseModel):
    referral_id: str
    participant_id: str
    specialist_id: str
    score: float


class PlanSummary(BaseModel):
    method: str
    total_score: float
    assigned: int
    assignments: list[PlannedAssignment]
    unassigned: list[str] = Field(description="Referral ids left without a specialist.")


class MatchingPlan(BaseModel):
    proposal: bool = Field(default=True, description="Always true: nothing changes until each is assigned.")
    on: date
    queue: int = Field(description="Open referrals without a specialist (requested or received).")
    weights: Weights
    batch: PlanSummary = Field(description="The plan: highest total score within every specialist's free slots.")
    greedy: PlanSummary = Field(description="For comparison: each referral in queue order takes its best match.")


def _summary(plan: Plan) -> PlanSummary:
    return PlanSummary(
        method=plan.method,
        total_score=plan.total_score,
        assigned=len(plan.assignments),
        assignments=[PlannedAssignment(**vars(a)) for a in plan.assignments],
        unassigned=plan.unassigned,
    )


def _config(request: Request) -> MatchingConfig:
    config: MatchingConfig = request.app.state.matching
    return config


def _reference(program: Program, kind: str, record_id: str, resource_type: str) -> str:
    return f"{resource_type}/{fhir_id(program.identifier_system, kind, record_id)}"


def _needs_specialists(access: Access) -> None:
    access.require("Practitioner", Interaction.SEARCH)


@router.get(
    "/referrals/{record_id}/matches",
    response_model=Matches,
    summary="Peer specialists for a referral, ranked, each with the reasons for its score",
    operation_id="referral_matches",
)
async def referral_matches(
    request: Request,
    record_id: str,
    program: ProgramDep,
    access: AccessDep,
    database: DatabaseDep,
) -> Matches:
    _needs_specialists(access)
    config = _config(request)
    async with database.read() as conn:
        referral, ranking = await matching.matches(conn, program, record_id, config, datetime.now(UTC).date())
    await audit_trail.reading(
        request,
        access,
        program.id,
        "peer-read",
        patients=[audit_trail.participant_patient(program, referral.participant_id)],
        entities=[_reference(program, "referral", referral.id, "ServiceRequest")],
    )
    return Matches(
        referral_id=referral.id,
        participant_id=referral.participant_id,
        weights=config.weights_for(program.code),
        wanted_areas=ranking.wanted_areas,
        matches=ranking.matches,
        excluded=ranking.excluded,
    )


@router.post(
    "/referrals/{record_id}/assign",
    response_model=Assignment,
    summary="Assign a peer specialist to a received referral (accepts it), with the reason",
    operation_id="assign_referral",
)
async def assign_referral(
    request: Request,
    record_id: str,
    body: Annotated[AssignRequest, Body()],
    program: ProgramDep,
    access: AccessDep,
    database: DatabaseDep,
    expected_version: IfMatchDep,
    response: Response,
) -> Assignment:
    _needs_specialists(access)
    now = datetime.now(UTC)
    async with database.transaction() as conn:
        done = await matching.assign(
            conn,
            program,
            record_id,
            body.specialist_id,
            reason=body.reason,
            by=body.by,
            config=_config(request),
            expected_version=expected_version,
            now=now,
        )
        referral = done.referral
        detail = {
            "patients": [audit_trail.participant_patient(program, referral.participant_id)],
            "entities": sorted(
                {
                    _reference(program, "referral", referral.id, "ServiceRequest"),
                    _reference(program, "specialist", body.specialist_id, "Practitioner"),
                }
            ),
            "assignment": done.audit_detail(body.by),
            "reason": body.reason,
        }
        purpose = request.headers.get(audit_trail.PURPOSE_HEADER)
        if purpose:
            detail["purpose"] = purpose[:64]
        record = AuditRecord(
            "rest",
            "peer-action",
            "U",
            "0",
            client_id=access.client_id,
            organization=access.organization,
            address=request.client.host if request.client else None,
            program_id=program.id,
            detail=detail,
        )
        await write(conn, record)  # last in the transaction: the assignment and its record commit together
    response.headers["ETag"] = etag(referral.version)
    return Assignment(
        referral=referral,
        match=done.chosen,
        top_specialist_id=done.top.specialist_id,
        override=done.override,
        reason=body.reason,
    )


@router.post(
    "/matching/plan",
    response_model=MatchingPlan,
    summary="A proposed assignment of the open referral queue (nothing changes until each is assigned)",
    operation_id="matching_plan",
    dependencies=[Depends(refuse_body)],
)
async def matching_plan(
    request: Request, program: ProgramDep, access: AccessDep, database: DatabaseDep
) -> MatchingPlan:
    _needs_specialists(access)
    config = _config(request)
    today = datetime.now(UTC).date()
    async with database.read() as conn:
        batch, greedy = await matching.plan(conn, program, config, today)
    participants = {a.participant_id for a in batch.assignments} | {a.participant_id for a in greedy.assignments}
    await audit_trail.reading(
        request,
        access,
        program.id,
        "peer-list",
        patients=[audit_trail.participant_patient(program, p) for p in sorted(participants)],
        query="matching-plan",
    )
    return MatchingPlan(
        on=today,
        queue=len(batch.assignments) + len(batch.unassigned),
        weights=config.weights_for(program.code),
        batch=_summary(batch),
        greedy=_summary(greedy),
    )
