"""Coverage on file: create, change and read a participant's coverages. The payer must name a rule
set the gateway loaded; every change goes through the change hub (no FHIR form yet)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncConnection

from service.domain.billing import PayerRegistry
from service.domain.coverage import Coverage, CoverageFields
from service.domain.errors import RuleViolation
from service.store import RecordRepository
from service.store import kinds as k

from .changes import record_changed
from .operations import utcnow, validation_errors

REPOSITORY: RecordRepository[Coverage] = RecordRepository(k.COVERAGES)
FROZEN = frozenset({"participant_id"})


async def _check(conn: AsyncConnection, program_id: str, fields: CoverageFields, payers: PayerRegistry) -> None:
    if fields.payer not in payers.payers:
        raise RuleViolation(f"payer names no payer rule set; known: {', '.join(payers.ids)}")
    if await RecordRepository(k.PARTICIPANTS).find(conn, program_id, fields.participant_id) is None:
        raise RuleViolation("participant_id names no participant in this program")


async def create(
    conn: AsyncConnection, program_id: str, fields: CoverageFields, payers: PayerRegistry, now: datetime | None = None
) -> Coverage:
    await _check(conn, program_id, fields, payers)
    at = now or utcnow()
    record = await REPOSITORY.insert(conn, program_id, fields, at)
    await record_changed(conn, program_id, k.COVERAGES.name, record, at)
    return record


async def update(
    conn: AsyncConnection,
    program_id: str,
    coverage_id: str,
    changes: Mapping[str, Any],
    payers: PayerRegistry,
    *,
    expected_version: int | None,
    now: datetime | None = None,
) -> Coverage:
    """Apply a partial change and re-validate the whole coverage."""
    current = await REPOSITORY.get(conn, program_id, coverage_id)
    if FROZEN & set(changes):
        raise RuleViolation("a coverage stays with its participant; record a new coverage instead")
    try:
        merged = CoverageFields.model_validate(
            {**current.model_dump(mode="json", include=set(CoverageFields.model_fields)), **changes}
        )
    except ValidationError as exc:
        raise RuleViolation("the change breaks a rule of the coverage", errors=validation_errors(exc)) from None
    await _check(conn, program_id, merged, payers)
    at = now or utcnow()
    content = merged.model_dump(mode="json")
    record = await REPOSITORY.update(conn, current, content, at, expected_version=expected_version)
    await record_changed(conn, program_id, k.COVERAGES.name, record, at)
    return record
