"""Keeps the FHIR projection in step with the records, in the writer's transaction.

After a record changes, every FHIR resource derived from it is mapped again. A resource whose
content did not change keeps its version; one that did gets the next version, its canonical JSON
bytes (meta.versionId and meta.lastUpdated included), a row in ``fhir_versions`` and fresh search
index rows. Reads and searches then serve these bytes as they are.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from service.auth import boundary
from service.domain import Program
from service.fhir.render import PAGE, all_records, fhir_resources, renders
from service.store import RecordRepository
from service.store import kinds as k
from service.store.tables import fhir_resources as resources_table
from service.store.tables import fhir_search, fhir_versions

from .search_params import SEARCH_PARAMS, index_values


def instant(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


async def _affected(conn: AsyncConnection, program: Program, kind: str, record: Any) -> list[tuple[str, str]]:
    """(record kind, id) pairs whose FHIR a change of ``record`` can alter."""
    if kind == "care_team_member":
        return [("care-team", record.participant_id)]
    if kind == "clinical_context":  # the kept resources, and the ServiceRequest that links them
        return [("clinical-context", record.referral_id), ("referral", record.referral_id)]
    if not renders(kind):
        return []
    targets = [(kind, record.id)]  # a stored kind is also the renderer's kind
    if kind == "program":  # the outcome instruments are served as the program's Questionnaires
        targets.append(("questionnaires", record.id))
    elif kind == "assessment" and record.amends_id:  # the corrected assessment becomes entered-in-error
        targets.append(("assessment", record.amends_id))
    if kind in ("encounter", "assessment"):  # delivered sessions and outcome scores are outputs of the Task
        referrals = await all_records(conn, k.REFERRALS, program.id, participant_id=record.participant_id)
        targets += [("referral", r.id) for r in referrals]
    elif kind == "consent":  # a substance-use consent labels the participant's notes (42 CFR Part 2)
        sessions = await all_records(conn, k.ENCOUNTERS, program.id, participant_id=record.participant_id)
        for session in sessions:
            targets += [("note", n.id) for n in await all_records(conn, k.NOTES, program.id, encounter_id=session.id)]
    return targets


async def refresh(conn: AsyncConnection, program: Program, kind: str, record: Any, now: datetime) -> None:
    """The FHIR projection of every resource a change of one record touches, in the change's
    transaction (what else follows a change is the change hub's: ``service.records.changes``)."""
    for preview_kind, record_id in await _affected(conn, program, kind, record):
        for resource in await fhir_resources(conn, program, preview_kind, record_id):
            await store(conn, program.id, resource, preview_kind, record_id, now)


async def refresh_questionnaires(conn: AsyncConnection, program: Program, now: datetime) -> int:
    """The program's Questionnaires as the instruments now are (at start-up: an instrument added to
    the program's folder is served from then on); unchanged ones keep their version. Returns how many
    were stored anew."""
    stored = 0
    for resource in await fhir_resources(conn, program, "questionnaires", program.id):
        stored += await store(conn, program.id, resource, "questionnaires", program.id, now)
    return stored


async def refresh_all_questionnaires(conn: AsyncConnection, now: datetime) -> int:
    """``refresh_questionnaires`` for every program (the gateway calls it once at start-up)."""
    page = await RecordRepository(k.PROGRAMS).list(conn, None, limit=PAGE)
    stored = 0
    while True:
        for program in page.items:
            stored += await refresh_questionnaires(conn, program, now)
        if page.next_cursor is None:
            return stored
        page = await RecordRepository(k.PROGRAMS).list(conn, None, limit=PAGE, cursor=page.next_cursor)


async def store(
    conn: AsyncConnection, program_id: str, resource: dict[str, Any], source_kind: str, source_id: str, now: datetime
) -> bool:
    """Store one mapped resource as a new version if its content changed; True when it did."""
    content_hash = hashlib.sha256(orjson.dumps(resource)).hexdigest()
    resource_type, resource_id = resource["resourceType"], resource["id"]
    t = resources_table.c
    # FOR UPDATE: a concurrent change of the same resource waits here until this one commits and then
    # reads its version (reading first and locking at the UPDATE gave both the same next version: the
    # second's fhir_versions row was refused, a 500, seen in the soak); SQLite writes one at a time
    current = (
        await conn.execute(
            select(t.pk, t.version_id, t.content_hash)
            .where(t.program_id == program_id, t.resource_type == resource_type, t.resource_id == resource_id)
            .with_for_update()
        )
    ).first()
    if current is not None and current.content_hash == content_hash:
        return False
    version = 1 if current is None else current.version_id + 1
    meta = {"versionId": str(version), "lastUpdated": instant(now), **resource.get("meta", {})}
    head = {"resourceType": resource_type, "id": resource_id, "meta": meta}
    body = orjson.dumps({**head, **{key: value for key, value in resource.items() if key not in head}})
    values = {
        "version_id": version,
        "last_updated": now,
        "content_hash": content_hash,
        "body": body,
        "source_kind": source_kind,
        "source_id": source_id,
        "patient_id": boundary.compartment_patient(resource),
    }
    if current is None:
        result = await conn.execute(
            insert(resources_table).values(
                program_id=program_id, resource_type=resource_type, resource_id=resource_id, **values
            )
        )
        pk = result.inserted_primary_key[0] if result.inserted_primary_key else None
    else:
        pk = current.pk
        await conn.execute(update(resources_table).where(t.pk == pk).values(**values))
        await conn.execute(delete(fhir_search).where(fhir_search.c.resource_pk == pk))
    await conn.execute(
        insert(fhir_versions).values(
            program_id=program_id,
            resource_type=resource_type,
            resource_id=resource_id,
            version_id=version,
            last_updated=now,
            body=body,
        )
    )
    rows = [
        {
            "resource_pk": pk,
            "program_id": program_id,
            "resource_type": resource_type,
            "param": name,
            "token": token,
            "moment": moment,
        }
        for name, param in SEARCH_PARAMS.get(resource_type, {}).items()
        for token, moment in index_values(param, resource)
    ]
    if rows:
        await conn.execute(insert(fhir_search), rows)
    return True
