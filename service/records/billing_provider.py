"""The program as billing provider: its NPI, taxonomy, tax id and address (837P loop 2010AA), set by
an administrator; the change is versioned like every record."""

from __future__ import annotations

from datetime import datetime

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncConnection

from service.domain import Program, ProgramFields
from service.domain.errors import RuleViolation
from service.domain.program import BillingProviderFields
from service.store import RecordRepository
from service.store import kinds as k

from .changes import record_changed
from .operations import utcnow, validation_errors


async def set_billing(
    conn: AsyncConnection, program: Program, fields: BillingProviderFields, now: datetime | None = None
) -> Program:
    """Replace the program's billing fields with ``fields`` (the ones given; None leaves one as it is)."""
    changes = fields.model_dump(mode="json", exclude_none=True)
    current = await RecordRepository(k.PROGRAMS).get(conn, None, program.id)
    try:
        merged = ProgramFields.model_validate(
            {**current.model_dump(mode="json", include=set(ProgramFields.model_fields)), **changes}
        )
    except ValidationError as exc:
        raise RuleViolation("the change breaks a rule of the program", errors=validation_errors(exc)) from None
    at = now or utcnow()
    record = await RecordRepository(k.PROGRAMS).update(conn, current, merged.model_dump(mode="json"), at)
    await record_changed(conn, record.id, "program", record, at)
    return record
