"""Billing: the payer rule sets loaded, claim readiness of the finished sessions of a period, and the
program as billing provider."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from service.api import audit_trail
from service.api.access import Access, AccessDep
from service.api.deps import DatabaseDep, ProgramDep
from service.audit import AuditRecord, write
from service.domain import Program
from service.domain.billing import PayerRules
from service.domain.billing.readiness import ReadinessLine, Status
from service.domain.common import Address
from service.domain.program import BillingProviderFields
from service.records import billing as operations
from service.records import billing_provider

from .coverages import payers

router = APIRouter(prefix="/billing", tags=["billing"])


class PayerList(BaseModel):
    items: list[PayerRules]


@router.get("/payers", response_model=PayerList, summary="The payer rule sets loaded", operation_id="list_payer_rules")
async def list_payer_rules(request: Request, program: ProgramDep) -> PayerList:
    registry = payers(request)
    return PayerList(items=[registry.payers[i] for i in registry.ids])


class Summary(BaseModel):
    sessions: int
    ready: int
    blocked: int
    units_ready: int
    charge_ready: Decimal = Field(description="Sum of the ready lines' charges.")
    reasons: dict[str, int] = Field(description="How many lines each blocking reason stops.")


class Readiness(BaseModel):
    first: date = Field(description="The first date of service asked for (from).")
    last: date = Field(description="The last date of service asked for (to, inclusive).")
    payer: str | None
    summary: Summary
    items: list[ReadinessLine]


def summarize(lines: list[ReadinessLine]) -> Summary:
    ready = [line for line in lines if line.status is Status.READY]
    reasons: dict[str, int] = {}
    for line in lines:
        for reason in line.reasons:
            reasons[reason.code] = reasons.get(reason.code, 0) + 1
    return Summary(
        sessions=len(lines),
        ready=len(ready),
        blocked=len(lines) - len(ready),
        units_ready=sum(line.units for line in ready),
        charge_ready=sum((line.charge or Decimal(0) for line in ready), Decimal("0.00")),
        reasons=dict(sorted(reasons.items())),
    )


@router.get(
    "/readiness",
    response_model=Readiness,
    summary="Claim readiness of the finished sessions of a period, with every blocking reason",
    operation_id="billing_readiness",
)
async def billing_readiness(
    request: Request,
    first: Annotated[date, Query(alias="from", description="First date of service (YYYY-MM-DD).")],
    last: Annotated[date, Query(alias="to", description="Last date of service, inclusive (YYYY-MM-DD).")],
    program: ProgramDep,
    access: AccessDep,
    database: DatabaseDep,
    payer: Annotated[str | None, Query(max_length=64, description="Only the lines billed to this payer.")] = None,
) -> Readiness:
    async with database.read() as conn:
        lines = await operations.readiness(conn, program, payers(request), first, last, payer)
    patients = {audit_trail.participant_patient(program, line.participant_id) for line in lines}
    await audit_trail.reading(
        request, access, program.id, "peer-list", patients=sorted(patients), query=request.url.query or None
    )
    return Readiness(first=first, last=last, payer=payer, summary=summarize(lines), items=lines)


class BillingProvider(BaseModel):
    npi: str | None
    taxonomy: str | None
    tax_id: str | None
    address: Address | None


def _provider(program: Program) -> BillingProvider:
    return BillingProvider(npi=program.npi, taxonomy=program.taxonomy, tax_id=program.tax_id, address=program.address)


@router.get(
    "/provider",
    response_model=BillingProvider,
    summary="The program as billing provider (NPI, taxonomy, tax id, address)",
    operation_id="read_billing_provider",
)
async def read_billing_provider(program: ProgramDep, access: AccessDep) -> BillingProvider:
    return _provider(program)


@router.patch(
    "/provider",
    response_model=BillingProvider,
    summary="Set the program's billing NPI, taxonomy, tax id or address (needs peerlink.admin)",
    operation_id="set_billing_provider",
)
async def set_billing_provider(
    request: Request, body: BillingProviderFields, program: ProgramDep, access: AccessDep, database: DatabaseDep
) -> BillingProvider:
    async with database.transaction() as conn:
        updated = await billing_provider.set_billing(conn, program, body)
        await write(conn, provider_record(request, access, program.id, body))
    cache = request.app.state.program_cache
    for key in [key for key, (_, cached) in cache.items() if cached.id == program.id]:
        cache.pop(key, None)
    return _provider(updated)


def provider_record(
    request: Request | None, access: Access | None, program_id: str, body: BillingProviderFields
) -> AuditRecord:
    return AuditRecord(
        "admin",
        "billing-provider",
        "U",
        "0",
        client_id=access.client_id if access is not None else None,
        organization=access.organization if access is not None else None,
        address=request.client.host if request is not None and request.client else None,
        program_id=program_id,
        detail={"fields": sorted(body.model_dump(exclude_none=True))},
    )
