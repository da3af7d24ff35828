"""Outcome assessments: record, read, list and correct; a participant's outcomes; what is due.

Explicit routes rather than generated ones: an assessment is scored on the way in and never
patched (a correction is an amendment), and two read models (outcomes, due) sit beside it.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request, Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from service.api import audit_trail
from service.api.access import Access, AccessDep
from service.api.deps import DatabaseDep, IfMatchDep, ProgramDep, etag
from service.domain import Program
from service.domain.assessment import (
    Assessment,
    AssessmentAnswers,
    AssessmentFields,
    AssessmentStatus,
    ChangeKind,
)
from service.domain.instruments import Direction, Instrument, Registry
from service.domain.instruments.schedule import DueStatus
from service.records import assessments as operations
from service.store.repository import Range

router = APIRouter(tags=["assessment"])
KIND = "assessment"


def _registry(request: Request) -> Registry:
    registry: Registry = request.app.state.instruments
    return registry


def _located(response: Response, record: Assessment) -> Assessment:
    response.headers["ETag"] = etag(record.version)
    response.headers["Location"] = f"/peer/v1/assessments/{record.id}"
    return record


async def _audit_change(conn: Any, request: Request, access: Access, program: Program, record: Assessment) -> None:
    patient, reference = await audit_trail.peer_subject(conn, program, KIND, record)
    await audit_trail.changing(
        conn, request, access, program.id, "peer-create", "C", patients=[patient], entities=[reference]
    )


class InstrumentList(BaseModel):
    items: list[Instrument]


@router.get(
    "/instruments", response_model=InstrumentList, summary="The outcome instruments", operation_id="list_instruments"
)
async def list_instruments(request: Request, program: ProgramDep) -> InstrumentList:
    registry = _registry(request)
    return InstrumentList(items=[registry.instruments[key] for key in sorted(registry.instruments)])


@router.post(
    "/assessments",
    status_code=201,
    response_model=Assessment,
    summary="Record and score an assessment",
    operation_id="create_assessment",
)
async def create_assessment(
    request: Request,
    body: Annotated[AssessmentFields, Body()],
    program: ProgramDep,
    access: AccessDep,
    database: DatabaseDep,
    response: Response,
) -> Assessment:
    async with database.transaction() as conn:
        record = await operations.create(conn, program.id, body, _registry(request), datetime.now(UTC))
        await _audit_change(conn, request, access, program, record)
    return _located(response, record)


@router.post(
    "/assessments/{record_id}/amend",
    status_code=201,
    response_model=Assessment,
    summary="Correct an assessment: records and scores the correcting assessment",
    operation_id="amend_assessment",
)
async def amend_assessment(
    request: Request,
    record_id: str,
    body: Annotated[AssessmentAnswers, Body()],
    program: ProgramDep,
    access: AccessDep,
    database: DatabaseDep,
    expected_version: IfMatchDep,
    response: Response,
) -> Assessment:
    async with database.transaction() as conn:
        record = await operations.amend(
            conn,
            program.id,
            record_id,
            body,
            _registry(request),
            expected_version=expected_version,
            now=datetime.now(UTC),
        )
        await _audit_change(conn, request, access, program, record)
    return _located(response, record)


class DueItem(BaseModel):
    participant_id: str
    instrument: str
    occasion: str = Field(description="baseline, repeat, or a fixed follow-up of the schedule (e.g. 6-month).")
    due_on: date
    due_by: date
    status: DueStatus
    last_completed_on: date | None


class DueList(BaseModel):
    items: list[DueItem]


class DueFilters(BaseModel):
    model_config = ConfigDict(extra="forbid")

    instrument: str | None = Field(default=None, max_length=64)
    participant_id: str | None = Field(default=None, max_length=64)
    within_days: int = Field(default=14, ge=0, le=366, description="Also list what falls due this soon.")
    on: date | None = Field(default=None, description="The day to compute for (default: today, UTC).")


@router.get(
    "/assessments/due",
    response_model=DueList,
    summary="Follow-up assessments due and overdue",
    operation_id="list_due_assessments",
)
async def list_due(
    request: Request,
    filters: Annotated[DueFilters, Query()],
    program: ProgramDep,
    access: AccessDep,
    database: DatabaseDep,
) -> DueList:
    today = filters.on or datetime.now(UTC).date()
    async with database.read() as conn:
        found = await operations.due(
            conn,
            program,
            _registry(request),
            today,
            horizon_days=filters.within_days,
            instrument=filters.instrument,
            participant_id=filters.participant_id,
        )
    patients = {audit_trail.participant_patient(program, d.participant_id) for d in found}
    await audit_trail.reading(
        request, access, program.id, "peer-list", patients=sorted(patients), query=request.url.query or None
    )
    items = [
        DueItem(
            participant_id=d.participant_id,
            instrument=d.instrument,
            occasion=d.due.occasion,
            due_on=d.due.due_on,
            due_by=d.due.due_by,
            status=d.due.status,
            last_completed_on=d.last_completed_on,
        )
        for d in found
    ]
    return DueList(items=items)


@router.get(
    "/assessments/{record_id}", response_model=Assessment, summary="Read an assessment", operation_id="read_assessment"
)
async def read_assessment(
    request: Request, record_id: str, program: ProgramDep, access: AccessDep, database: DatabaseDep, response: Response
) -> Assessment:
    async with database.read() as conn:
        record = await operations.REPOSITORY.get(conn, program.id, record_id)
        patient, reference = await audit_trail.peer_subject(conn, program, KIND, record)
    await audit_trail.reading(request, access, program.id, "peer-read", patients=[patient], entities=[reference])
    return _located(response, record)


class AssessmentFilters(BaseModel):
    model_config = ConfigDict(extra="forbid")

    participant_id: str | None = Field(default=None, max_length=64)
    instrument: str | None = Field(default=None, max_length=64)
    status: AssessmentStatus | None = None
    completed_from: AwareDatetime | None = Field(default=None, description="Inclusive.")
    completed_before: AwareDatetime | None = Field(default=None, description="Exclusive.")
    limit: int = Field(default=50, ge=1, le=500, description="Page size.")
    cursor: str | None = Field(default=None, max_length=200, description="From next_cursor.")


class AssessmentPage(BaseModel):
    items: list[Assessment]
    next_cursor: str | None = None
    next: str | None = None


@router.get("/assessments", response_model=AssessmentPage, summary="List assessments", operation_id="list_assessment")
async def list_assessments(
    request: Request,
    filters: Annotated[AssessmentFilters, Query()],
    program: ProgramDep,
    access: AccessDep,
    database: DatabaseDep,
) -> AssessmentPage:
    equals = filters.model_dump(include={"participant_id", "instrument", "status"}, mode="json")
    ranges = {"completed_at": Range(filters.completed_from, filters.completed_before)}
    async with database.read() as conn:
        page = await operations.REPOSITORY.list(
            conn, program.id, equals=equals, ranges=ranges, limit=filters.limit, cursor=filters.cursor
        )
        subjects = [await audit_trail.peer_subject(conn, program, KIND, r) for r in page.items]
    await audit_trail.reading(
        request,
        access,
        program.id,
        "peer-list",
        patients=[p for p, _ in subjects],
        entities=[r for _, r in subjects],
        query=request.url.query or None,
    )
    next_url = str(request.url.include_query_params(cursor=page.next_cursor)) if page.next_cursor else None
    return AssessmentPage(items=page.items, next_cursor=page.next_cursor, next=next_url)


class OutcomePoint(BaseModel):
    assessment_id: str
    completed_at: datetime
    total: int
    band: str
    band_display: str
    flags: list[str]
    change_from_baseline: int
    change: ChangeKind


class OutcomeSeries(BaseModel):
    instrument: str
    instrument_version: str
    title: str
    direction: Direction
    reliable_change_points: int | None = Field(description="None: the instrument has no reliable-change threshold.")
    points: list[OutcomePoint]


class Outcomes(BaseModel):
    participant_id: str
    series: list[OutcomeSeries]


@router.get(
    "/participants/{record_id}/outcomes",
    response_model=Outcomes,
    summary="A participant's outcomes per instrument",
    operation_id="participant_outcomes",
)
async def participant_outcomes(
    request: Request, record_id: str, program: ProgramDep, access: AccessDep, database: DatabaseDep
) -> Outcomes:
    async with database.read() as conn:
        found = await operations.outcomes(conn, program.id, record_id, _registry(request))
    patient = audit_trail.participant_patient(program, record_id)
    await audit_trail.reading(request, access, program.id, "peer-read", patients=[patient])
    series = [
        OutcomeSeries(
            instrument=s.instrument.id,
            instrument_version=s.instrument.version,
            title=s.instrument.title,
            direction=s.instrument.direction,
            reliable_change_points=s.instrument.reliable_change.points if s.instrument.reliable_change else None,
            points=[
                OutcomePoint(
                    assessment_id=p.assessment.id,
                    completed_at=p.assessment.completed_at,
                    total=p.assessment.total,
                    band=p.assessment.band,
                    band_display=p.assessment.band_display,
                    flags=p.assessment.flags,
                    change_from_baseline=p.change.from_baseline,
                    change=p.change.kind,
                )
                for p in s.points
            ],
        )
        for s in found
    ]
    return Outcomes(participant_id=record_id, series=series)
