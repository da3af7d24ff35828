"""Claims: the 837P export of a payer's ready sessions, the payer's 999 and 835 answers, and the claims
as they stand. An exported file is a disclosure to the payer: its audit record (type billing, the
payer as the recipient organisation, every participant's Patient) puts it in each participant's
accounting of disclosures."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from mappings.ids import fhir_id
from service.api import audit_trail
from service.api.access import AccessDep
from service.api.deps import DatabaseDep, ProgramDep
from service.audit import AuditRecord, write
from service.domain import Program
from service.domain.billing import PayerRegistry
from service.domain.errors import BadRequest, UnsupportedMediaType
from service.records import claims as exporting
from service.records import claims_answers as answering

from .coverages import payers

router = APIRouter(prefix="/billing", tags=["billing"])
x12_router = APIRouter(prefix="/billing", tags=["billing"])
X12_MEDIA = "application/edi-x12"
X12_BODIES = frozenset({X12_MEDIA, "text/plain", "application/octet-stream"})


def disclosure(
    program: Program, export: exporting.Export, registry: PayerRegistry, client_id: str | None, address: str | None
) -> AuditRecord:
    """The audit record of an exported claim file: a disclosure to the payer of every participant in it."""
    route = registry.get(export.payer).claims
    recipient = route.payer_name if route is not None else export.payer
    return AuditRecord(
        "billing",
        "claim-export",
        "C",
        "0",
        client_id=client_id,
        organization=recipient,
        address=address,
        program_id=program.id,
        detail={
            "patients": sorted(audit_trail.participant_patient(program, p) for p in export.participants),
            "entities": sorted(
                f"Encounter/{fhir_id(program.identifier_system, 'encounter', s)}" for s in export.sessions
            ),
            "purpose": "HPAYMT",
            "interchange": export.interchange,
            "claims": len(export.claims),
        },
    )


class ExportRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    payer: str = Field(min_length=1, max_length=64, description="The payer rule set, e.g. nc-medicaid.")
    first: date = Field(alias="from", description="First date of service.")
    last: date = Field(alias="to", description="Last date of service, inclusive.")
    test: bool = Field(default=False, description="Mark the interchange as test data (ISA15 T).")


@router.post(
    "/claims/export",
    summary="Write the 837P (005010X222A1) of a payer's ready, not yet billed sessions",
    operation_id="export_claims",
    response_class=Response,
    responses={
        200: {
            "description": "The X12 interchange. X-PeerLink-Claims: claims in it; X-PeerLink-Interchange: ISA13.",
            "content": {X12_MEDIA: {"schema": {"type": "string"}}},
        }
    },
)
async def export_claims(
    request: Request, body: ExportRequest, program: ProgramDep, access: AccessDep, database: DatabaseDep
) -> Response:
    registry = payers(request)
    async with database.transaction() as conn:
        export = await exporting.export(
            conn, program, registry, body.payer, body.first, body.last, usage="T" if body.test else "P"
        )
        address = request.client.host if request.client else None
        await write(conn, disclosure(program, export, registry, access.client_id, address))
    headers = {
        "X-PeerLink-Claims": str(len(export.claims)),
        "X-PeerLink-Interchange": str(export.interchange),
        "Content-Disposition": f'attachment; filename="837p-{export.payer}-{export.interchange:09d}.x12"',
    }
    return Response(export.text, media_type=X12_MEDIA, headers=headers)


class ClaimStatus(BaseModel):
    claim_number: str
    line_control: str
    session_id: str
    participant_id: str
    payer: str
    service_date: date
    frequency: str = Field(description="1 original, 7 replacement.")
    replaces: str | None
    replaced_by: str | None
    units: int
    charge: Decimal
    status: str = Field(description="sent, accepted or rejected (999); paid, partial or denied (835).")
    paid: Decimal
    adjusted: Decimal
    adjustment_codes: list[str] = Field(description="CAS group-CARC (e.g. CO-45) and RARC (e.g. N130) codes.")
    outstanding: Decimal
    payer_claim: str | None


class SessionBalance(BaseModel):
    session_id: str
    charge: Decimal
    paid: Decimal
    adjusted: Decimal
    outstanding: Decimal
    status: str = Field(description="The status of the session's current claim.")


class ClaimList(BaseModel):
    items: list[ClaimStatus]
    sessions: list[SessionBalance] = Field(description="Per session: its current (not replaced) claim.")


def balances(items: list[dict[str, Any]]) -> list[SessionBalance]:
    return [
        SessionBalance(
            session_id=i["session_id"],
            charge=i["charge"],
            paid=i["paid"],
            adjusted=i["adjusted"],
            outstanding=i["outstanding"],
            status=i["status"],
        )
        for i in items
        if i["replaced_by"] is None
    ]


@router.get(
    "/claims", response_model=ClaimList, summary="Claims sent and what the payer answered", operation_id="list_claims"
)
async def list_claims(
    request: Request,
    first: Annotated[date, Query(alias="from", description="First date of service (YYYY-MM-DD).")],
    last: Annotated[date, Query(alias="to", description="Last date of service, inclusive (YYYY-MM-DD).")],
    program: ProgramDep,
    access: AccessDep,
    database: DatabaseDep,
    payer: Annotated[str | None, Query(max_length=64)] = None,
) -> ClaimList:
    async with database.read() as conn:
        items = await answering.claims(conn, program.id, first, last, payer)
    patients = {audit_trail.participant_patient(program, i["participant_id"]) for i in items}
    await audit_trail.reading(
        request, access, program.id, "peer-list", patients=sorted(patients), query=request.url.query or None
    )
    return ClaimList(items=[ClaimStatus(**i) for i in items], sessions=balances(items))


class IngestResult(BaseModel):
    kind: str = Field(description="999 or 835.")
    matched: list[dict[str, Any]] = Field(
        description="Claim lines matched: claim_number, line_control, session_id, status."
    )
    unmatched: list[str] = Field(description="What the file names that no claim of this program is.")
    errors: list[dict[str, Any]] = Field(description="999: the segments in error (IK3) and elements (IK4).")


@x12_router.post(
    "/remittances",
    response_model=IngestResult,
    summary="Record a payer's 999 acknowledgement or 835 remittance against the claims sent",
    operation_id="ingest_remittance",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {X12_MEDIA: {"schema": {"type": "string"}}, "text/plain": {"schema": {"type": "string"}}},
        }
    },
)
async def ingest_remittance(
    request: Request, program: ProgramDep, access: AccessDep, database: DatabaseDep
) -> IngestResult:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type not in X12_BODIES:
        raise UnsupportedMediaType(f"send the file as {X12_MEDIA} or text/plain")
    raw = await request.body()
    if len(raw) > answering.MAX_BYTES:
        raise BadRequest(f"the file is over {answering.MAX_BYTES} bytes")
    try:
        document = raw.decode("ascii")
    except UnicodeDecodeError:
        raise BadRequest("an X12 file is ASCII text") from None
    async with database.transaction() as conn:
        result = await answering.ingest(conn, program.id, document)
        await audit_trail.changing(
            conn,
            request,
            access,
            program.id,
            "peer-update",
            "U",
            entities=[f"Claim/{m['claim_number']}" for m in result.matched],
        )
    return IngestResult(kind=result.kind, matched=result.matched, unmatched=result.unmatched, errors=result.errors)
