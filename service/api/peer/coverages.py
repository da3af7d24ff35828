"""Coverage on file: create, read, change and list a participant's coverages (payer rule set, plan,
member id, period, prior authorizations). Explicit routes: the payer is checked against the rule
sets the gateway loaded, which the generated record routes know nothing of."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from mappings.ids import fhir_id
from service.api import audit_trail
from service.api.access import Access, AccessDep
from service.api.deps import DatabaseDep, IfMatchDep, ProgramDep, etag
from service.domain import Program
from service.domain.billing import PayerRegistry
from service.domain.common import DatePeriod, ShortText
from service.domain.coverage import Authorization, Coverage, CoverageFields, PayerId, SubscriberRelationship
from service.records import coverages as operations

router = APIRouter(tags=["coverage"])


def payers(request: Request) -> PayerRegistry:
    registry: PayerRegistry = request.app.state.payers
    return registry


def _located(response: Response, record: Coverage) -> Coverage:
    response.headers["ETag"] = etag(record.version)
    response.headers["Location"] = f"/peer/v1/coverages/{record.id}"
    return record


def _subject(program: Program, record: Coverage) -> tuple[str, str]:
    patient = audit_trail.participant_patient(program, record.participant_id)
    return patient, f"Coverage/{fhir_id(program.identifier_system, 'coverage', record.id)}"


async def _audit_change(
    conn: Any, request: Request, access: Access, program: Program, record: Coverage, subtype: str, action: str
) -> None:
    patient, reference = _subject(program, record)
    await audit_trail.changing(
        conn, request, access, program.id, subtype, action, patients=[patient], entities=[reference]
    )


class CoveragePatch(BaseModel):
    """Fields of the coverage to change; absent fields keep their value (the participant never changes)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    payer: PayerId | None = None
    plan: ShortText | None = None
    member_id: Annotated[str, Field(min_length=1, max_length=80, pattern=r"^[A-Za-z0-9\-]+$")] | None = None
    group_number: ShortText | None = None
    relationship: SubscriberRelationship | None = None
    period: DatePeriod | None = None
    rank: int | None = Field(default=None, ge=1, le=9)
    authorizations: list[Authorization] | None = Field(default=None, max_length=50)


@router.post(
    "/coverages", status_code=201, response_model=Coverage, summary="Record a coverage", operation_id="create_coverage"
)
async def create_coverage(
    request: Request,
    body: Annotated[CoverageFields, Body()],
    program: ProgramDep,
    access: AccessDep,
    database: DatabaseDep,
    response: Response,
) -> Coverage:
    async with database.transaction() as conn:
        record = await operations.create(conn, program.id, body, payers(request))
        await _audit_change(conn, request, access, program, record, "peer-create", "C")
    return _located(response, record)


@router.get("/coverages/{record_id}", response_model=Coverage, summary="Read a coverage", operation_id="read_coverage")
async def read_coverage(
    request: Request, record_id: str, program: ProgramDep, access: AccessDep, database: DatabaseDep, response: Response
) -> Coverage:
    async with database.read() as conn:
        record = await operations.REPOSITORY.get(conn, program.id, record_id)
    patient, reference = _subject(program, record)
    await audit_trail.reading(request, access, program.id, "peer-read", patients=[patient], entities=[reference])
    return _located(response, record)


@router.patch(
    "/coverages/{record_id}", response_model=Coverage, summary="Change a coverage", operation_id="update_coverage"
)
async def update_coverage(
    request: Request,
    record_id: str,
    body: Annotated[CoveragePatch, Body()],
    program: ProgramDep,
    access: AccessDep,
    database: DatabaseDep,
    expected_version: IfMatchDep,
    response: Response,
) -> Coverage:
    changes = body.model_dump(mode="json", exclude_unset=True)
    async with database.transaction() as conn:
        record = await operations.update(
            conn, program.id, record_id, changes, payers(request), expected_version=expected_version
        )
        await _audit_change(conn, request, access, program, record, "peer-update", "U")
    return _located(response, record)


class CoverageFilters(BaseModel):
    model_config = ConfigDict(extra="forbid")

    participant_id: str | None = Field(default=None, max_length=64)
    payer: str | None = Field(default=None, max_length=64)
    limit: int = Field(default=50, ge=1, le=500, description="Page size.")
    cursor: str | None = Field(default=None, max_length=200, description="From next_cursor.")


class CoveragePage(BaseModel):
    items: list[Coverage]
    next_cursor: str | None = None
    next: str | None = None


@router.get("/coverages", response_model=CoveragePage, summary="List coverages", operation_id="list_coverage")
async def list_coverages(
    request: Request,
    filters: Annotated[CoverageFilters, Query()],
    program: ProgramDep,
    access: AccessDep,
    database: DatabaseDep,
) -> CoveragePage:
    equals = filters.model_dump(include={"participant_id", "payer"})
    async with database.read() as conn:
        page = await operations.REPOSITORY.list(
            conn, program.id, equals=equals, limit=filters.limit, cursor=filters.cursor
        )
    subjects = [_subject(program, r) for r in page.items]
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
    return CoveragePage(items=page.items, next_cursor=page.next_cursor, next=next_url)
