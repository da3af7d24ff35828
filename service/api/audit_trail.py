"""The audit record of an API interaction, written through the one audit writer: reads before their
response is released (a read whose record cannot be written fails with 503), changes as the last
statement of their own transaction."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncConnection

from mappings.ids import fhir_id
from service.api.access import Access
from service.audit import AuditRecord, write
from service.domain import Program

PURPOSE_HEADER = "x-purpose-of-use"
"""A client may name the purpose of use (e.g. TREAT, HPAYMT: HL7 v3 PurposeOfUse); it is recorded."""
_PURPOSE = PURPOSE_HEADER.encode()


def participant_patient(program: Program, participant_id: str) -> str:
    return fhir_id(program.identifier_system, "participant", participant_id)


def _purpose(request: Request) -> str | None:
    """The first X-Purpose-Of-Use header (as ``request.headers.get``), without building the Headers."""
    for name, value in request.scope["headers"]:
        if name == _PURPOSE:
            return str(value.decode("latin-1"))
    return None


def _record(
    request: Request,
    access: Access,
    program_id: str,
    subtype: str,
    action: str,
    patients: Iterable[str | None],
    entities: Iterable[str],
    query: str | None,
    interaction: str | None,
) -> AuditRecord:
    detail: dict[str, Any] = {
        "patients": sorted({p for p in patients if p}),
        "entities": sorted(set(entities)),
    }
    if query:
        detail["query"] = query
    if interaction:
        detail["interaction"] = interaction
    purpose = _purpose(request)
    if purpose:
        detail["purpose"] = purpose[:64]
    client = request.scope.get("client")
    return AuditRecord(
        "rest",
        subtype,
        action,  # type: ignore[arg-type]
        "0",
        client_id=access.client_id,
        organization=access.organization,
        address=client[0] if client is not None else None,  # request.client.host, without the Address
        program_id=program_id,
        detail=detail,
    )


async def reading(
    request: Request,
    access: Access,
    program_id: str,
    subtype: str,
    *,
    patients: Iterable[str | None] = (),
    entities: Iterable[str] = (),
    query: str | None = None,
    interaction: str | None = None,
) -> None:
    """Record a read, search or history before its answer goes out."""
    if not request.app.state.settings.audit_reads:
        return
    action = "E" if subtype in ("search", "peer-list") else "R"  # BALP: a query is an Execute
    record = _record(request, access, program_id, subtype, action, patients, entities, query, interaction)
    started = time.perf_counter()
    await write(request.app.state.database, record)
    request.app.state.metrics.audit_latency.observe(time.perf_counter() - started)


async def changing(
    conn: AsyncConnection,
    request: Request,
    access: Access,
    program_id: str,
    subtype: str,
    action: str,
    *,
    patients: Iterable[str | None] = (),
    entities: Iterable[str] = (),
) -> None:
    """Record a change in its transaction (call it last: it takes the chain lock until the commit)."""
    started = time.perf_counter()
    await write(conn, _record(request, access, program_id, subtype, action, patients, entities, None, None))
    request.app.state.metrics.audit_latency.observe(time.perf_counter() - started)


async def peer_subject(conn: AsyncConnection, program: Program, kind: str, record: Any) -> tuple[str | None, str]:
    """(Patient id, FHIR reference) of a peer record, for its audit record."""
    from mappings.context import RESOURCE_TYPES
    from service.store import RecordRepository
    from service.store import kinds as k

    system = program.identifier_system
    if kind == "care_team_member":
        return participant_patient(program, record.participant_id), (
            f"CareTeam/{fhir_id(system, 'care-team', record.participant_id)}"
        )
    reference = f"{RESOURCE_TYPES[kind]}/{fhir_id(system, kind, record.id)}"
    if kind == "participant":
        return participant_patient(program, record.id), reference
    if kind == "note":
        session = await RecordRepository(k.ENCOUNTERS).find(conn, program.id, record.encounter_id)
        return (participant_patient(program, session.participant_id) if session else None), reference
    participant_id = getattr(record, "participant_id", None)
    return (participant_patient(program, participant_id) if participant_id else None), reference
