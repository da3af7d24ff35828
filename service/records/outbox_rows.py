"""The outbox rows a record change writes, in the change's transaction: one per EHR connection that
pushes the record's kind and may receive it (the participant's consent naming the hospital, or, for a
referral's status, the connection the referral came from). Workers (``service.exchange``) claim and
deliver them; this module only decides and writes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from service.auth import boundary
from service.domain import Program, Referral, ReferralStatus
from service.domain.note import NoteStatus
from service.fhir.render import all_records
from service.records.push_kinds import PUSH_KINDS
from service.store import RecordRepository
from service.store import kinds as k
from service.store.tables import ehr_connections, ehr_referrals, outbox

OUTBOX_KIND = {
    "encounter": "encounter",
    "note": "note",
    "care_team_member": "care-team",
    "referral": "referral",
    "assessment": "assessment",
}
"""Record kind -> outbox kind (the care team is one per participant: its record id is the participant's)."""
CONSENTED_TYPE = {
    "encounter": "Encounter",
    "note": "DocumentReference",
    "care-team": "CareTeam",
    "assessment": "QuestionnaireResponse",  # the category assessments opens it and its Observations together
}


class Destination(Protocol):
    """An EHR connection as far as queueing needs it."""

    @property
    def name(self) -> str: ...

    @property
    def organization(self) -> str: ...


@dataclass(frozen=True)
class Receiver:
    """An enabled connection of the program: its name, its organisation, what it pushes."""

    name: str
    organization: str
    push: tuple[str, ...]

    def pushes(self, kind: str) -> bool:
        return any(PUSH_KINDS.get(p) == kind for p in self.push)


async def receivers(conn: AsyncConnection, program_id: str) -> list[Receiver]:
    """The program's enabled connections, oldest first."""
    c = ehr_connections.c
    rows = await conn.execute(
        select(c.name, c.organization, c.push, c.enabled).where(c.program_id == program_id).order_by(c.pk)
    )
    return [Receiver(r.name, r.organization, tuple(p for p in r.push.split(",") if p)) for r in rows if r.enabled]


async def subject_of(conn: AsyncConnection, program: Program, kind: str, record: Any) -> tuple[str, str] | None:
    """(record id, participant id) of the outbox row a change makes, or None when nothing goes out."""
    if kind == "note":
        if record.status == NoteStatus.DRAFT:  # a hospital record shows signed notes only
            return None
        session = await RecordRepository(k.ENCOUNTERS).get(conn, program.id, record.encounter_id)
        return record.id, session.participant_id
    if kind == "care_team_member":
        return record.participant_id, record.participant_id
    return record.id, record.participant_id


async def may_send(
    conn: AsyncConnection, program: Program, connection: Destination, kind: str, record_id: str, participant_id: str
) -> bool:
    """A referral's status goes back only to the EHR it came from; everything else needs the
    participant's consent naming the hospital, for that kind of record (a SUD counseling note: the
    category sud-counseling-notes). The one decision of ``service.auth.boundary``."""
    if kind == "referral":
        r = ehr_referrals.c
        found = await conn.execute(
            select(r.pk).where(r.connection == connection.name, r.referral_id == record_id).limit(1)
        )
        return found.first() is not None
    sud_note = kind == "note" and bool(await boundary.sud_counseling_notes(conn, program.id, [record_id]))
    return await boundary.granted(
        conn, program, connection.organization, participant_id, CONSENTED_TYPE[kind], sud_counseling_note=sud_note
    )


async def _queue(
    conn: AsyncConnection,
    program: Program,
    connection: str,
    outbox_kind: str,
    subject: tuple[str, str],
    now: datetime,
) -> int:
    """One pending row; none when the record is already waiting for that connection."""
    values = {
        "program_id": program.id,
        "connection": connection,
        "kind": outbox_kind,
        "record_id": subject[0],
        "participant_id": subject[1],
        "state": "pending",
        "attempts": 0,
        "created_at": now,
        "next_attempt_at": now,
    }
    dialect = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    statement = (
        dialect(outbox)
        .values(**values)
        # the predicate as literal SQL: PostgreSQL matches it to the partial index only when it is not a parameter
        .on_conflict_do_nothing(
            index_elements=["connection", "kind", "record_id"], index_where=text("state = 'pending'")
        )
    )
    return (await conn.execute(statement)).rowcount or 0


async def enqueue(conn: AsyncConnection, program: Program, kind: str, record: Any, now: datetime) -> int:
    """Queue a changed record for every connection that pushes its kind and may receive it. Returns
    the rows written (a record already waiting for a connection is not queued twice)."""
    outbox_kind = OUTBOX_KIND.get(kind)
    if outbox_kind is None:
        return 0
    connections = await receivers(conn, program.id)
    written = await _completed_referrals(conn, program, kind, record, connections, now)
    targets = [c for c in connections if c.pushes(outbox_kind)]
    subject = await subject_of(conn, program, kind, record) if targets else None
    if subject is None:
        return written
    subjects = [subject]
    if kind == "assessment" and record.amends_id:  # the corrected one goes again, as entered-in-error
        subjects.append((record.amends_id, record.participant_id))
    for connection in targets:
        for one in subjects:
            if await may_send(conn, program, connection, outbox_kind, *one):
                written += await _queue(conn, program, connection.name, outbox_kind, one, now)
    return written


async def _completed_referrals(
    conn: AsyncConnection, program: Program, kind: str, record: Any, connections: list[Receiver], now: datetime
) -> int:
    """An assessment recorded or corrected after a referral of its participant completed changes the
    latest score the clinic's Task lists: the referral's status goes to its EHR again."""
    targets = [c for c in connections if c.pushes("referral")]
    if kind != "assessment" or not targets:
        return 0
    status = ReferralStatus.COMPLETED.value
    found: list[Referral] = await all_records(
        conn, k.REFERRALS, program.id, participant_id=record.participant_id, status=status
    )
    written = 0
    for referral in found:
        for connection in targets:
            if await may_send(conn, program, connection, "referral", referral.id, record.participant_id):
                written += await _queue(
                    conn, program, connection.name, "referral", (referral.id, record.participant_id), now
                )
    return written


async def enqueue_one(
    conn: AsyncConnection, program: Program, connection: Destination, kind: str, record: Any, now: datetime
) -> int:
    """Queue one record for one connection (a backfill), if it may receive it."""
    subject = await subject_of(conn, program, kind, record)
    outbox_kind = OUTBOX_KIND[kind]
    if subject is None or not await may_send(conn, program, connection, outbox_kind, *subject):
        return 0
    return await _queue(conn, program, connection.name, outbox_kind, subject, now)
