"""GET /peer/v1/participants/{participant_id}/disclosures: the accounting of disclosures of one
participant's records (service/audit/disclosures.py), as JSON or CSV, for the program's
administrators (the peerlink.admin scope). Producing it is audited (admin ``disclosure-report``,
indexed under the participant's Patient)."""

from __future__ import annotations

from pathlib import Path as FilePath
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from service.api.access import AdminDep
from service.api.deps import DatabaseDep, ProgramDep
from service.audit import AuditRecord, write
from service.audit import disclosures as accounting
from service.domain.errors import BadRequest

router = APIRouter(tags=["participant"])
DEFAULT_ARCHIVE = FilePath("var/audit-archive")


class DisclosureEntry(BaseModel):
    date: str = Field(description="When the records were disclosed (UTC).")
    recipient_organization: str = Field(description="The organisation that received them.")
    recipient_client: str | None = Field(description="The recipient's client (application) id.")
    endpoint: str | None = Field(description="For deliveries to an EHR: the EHR connection.")
    interaction: str = Field(description="How: read, search, sent to the recipient's EHR ...")
    disclosed: str = Field(description="What was disclosed, in words.")
    resource_types: dict[str, int] = Field(description="Kinds of records disclosed (FHIR type -> count).")
    resources: list[str] = Field(description="The records (Type/id), when the event concerned this participant alone.")
    other_participants: bool = Field(description="The same disclosure also concerned other people (not named).")
    purpose: str | None = Field(description="Purpose of use the recipient stated.")
    audit_event: str = Field(description="Id of the AuditEvent behind this entry (GET /fhir/AuditEvent).")


class DisclosureReport(BaseModel):
    participant_id: str
    patient_id: str = Field(description="The participant's FHIR Patient id.")
    program: str
    from_: str = Field(alias="from")
    to: str
    generated: str
    count: int
    disclosures: list[DisclosureEntry]


@router.get(
    "/participants/{participant_id}/disclosures",
    summary="Accounting of disclosures of a participant's records (needs peerlink.admin)",
    description=accounting.__doc__,
    operation_id="participant_disclosures",
    response_model=DisclosureReport,
    responses={200: {"content": {"text/csv": {}}}},
)
async def participant_disclosures(
    request: Request,
    participant_id: Annotated[str, Path(pattern=r"^[A-Za-z0-9\-._]{1,64}$")],
    access: AdminDep,
    program: ProgramDep,
    database: DatabaseDep,
    from_: Annotated[str | None, Query(alias="from", description="Start (inclusive); default six years ago.")] = None,
    to: Annotated[str | None, Query(description="End (a date: inclusive of that day); default now.")] = None,
    format_: Annotated[Literal["json", "csv"], Query(alias="format", description="json or csv")] = "json",
) -> Response:
    start, end = accounting.period(accounting.parse_moment(from_), accounting.parse_moment(to, end=True))
    if start >= end:
        raise BadRequest("from must be before to")
    archive_dir = getattr(request.app.state.settings, "audit_archive_dir", DEFAULT_ARCHIVE)
    document = await accounting.accounting(
        database, program, participant_id, start, end, archive_dir=FilePath(archive_dir)
    )
    await write(
        database,
        AuditRecord(
            "admin",
            "disclosure-report",
            "R",
            "0",
            client_id=access.client_id,
            organization=access.organization,
            address=request.client.host if request.client else None,
            program_id=program.id,
            detail={
                "patients": [document["patient_id"]],
                "participant": participant_id,
                "from": document["from"],
                "to": document["to"],
                "returned": document["count"],
                "status": 200,
            },
        ),
    )
    if format_ == "csv":
        filename = f"disclosures-{participant_id}.csv"
        return Response(
            accounting.to_csv(document),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )
    return Response(
        DisclosureReport.model_validate(document).model_dump_json(by_alias=True), media_type="application/json"
    )
