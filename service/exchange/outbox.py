"""The transactional outbox: written in the transaction of every change an EHR should see, claimed
by workers, finished as delivered, retried, dead-lettered or withheld.

Order per participant and connection: only the oldest unfinished row of a (connection, participant)
can be claimed, so a participant's changes reach an EHR in the order they were made. Claims are
leases: a worker that dies leaves rows whose lease runs out, and the next claim takes them again
(delivery is idempotent, so a resend never duplicates). On PostgreSQL candidates are locked with
``FOR UPDATE SKIP LOCKED`` (workers never wait for each other); SQLite serializes writers anyway.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, exists, func, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from service.auth import boundary
from service.domain import Program
from service.domain.errors import Conflict
from service.domain.note import NoteStatus
from service.store import RecordRepository
from service.store import kinds as k
from service.store.repository import StoredKind
from service.store.tables import ehr_connections, ehr_referrals, outbox

from . import connections

OUTBOX_KIND = {"encounter": "encounter", "note": "note", "care_team_member": "care-team", "referral": "referral"}
"""Record kind -> outbox kind (the care team is one per participant: its record id is the participant's)."""
CONSENTED_TYPE = {"encounter": "Encounter", "note": "DocumentReference", "care-team": "CareTeam"}
UNFINISHED = ("pending", "sending")
Q = outbox.c  # the queue's columns


@dataclass(frozen=True)
class Claimed:
    pk: int
    program_id: str
    connection: str
    kind: str
    record_id: str
    participant_id: str
    attempts: int
    created_at: datetime


async def _subject(conn: AsyncConnection, program: Program, kind: str, record: Any) -> tuple[str, str] | None:
    """(record id, participant id) of the outbox row a change makes, or None when nothing goes out."""
    if kind == "note":
        if record.status == NoteStatus.DRAFT:  # a hospital record shows signed notes only
            return None
        session = await RecordRepository(k.ENCOUNTERS).get(conn, program.id, record.encounter_id)
        return record.id, session.participant_id
    if kind == "care_team_member":
        return record.participant_id, record.participant_id
    return record.id, record.participant_id


def _insert(conn: AsyncConnection, values: dict[str, Any]) -> Any:
    dialect = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    return (
        dialect(outbox)
        .values(**values)
        # the predicate as literal SQL: PostgreSQL matches it to the partial index only when it is not a parameter
        .on_conflict_do_nothing(
            index_elements=["connection", "kind", "record_id"], index_where=text("state = 'pending'")
        )
    )


async def enqueue(conn: AsyncConnection, program: Program, kind: str, record: Any, now: datetime) -> int:
    """Queue a changed record for every connection that pushes its kind and may receive it. Returns
    the rows written (a record already waiting for a connection is not queued twice)."""
    outbox_kind = OUTBOX_KIND.get(kind)
    if outbox_kind is None:
        return 0
    # a disabled connection is not selected: it queues nothing new (what it had waits for it)
    targets = [c for c in await connections.list_all(conn, program.id, enabled=True) if c.pushes(outbox_kind)]
    if not targets:
        return 0
    subject = await _subject(conn, program, kind, record)
    if subject is None:
        return 0
    record_id, participant_id = subject
    written = 0
    for connection in targets:
        if not await may_send(conn, program, connection, outbox_kind, record_id, participant_id):
            continue
        values = {
            "program_id": program.id,
            "connection": connection.name,
            "kind": outbox_kind,
            "record_id": record_id,
            "participant_id": participant_id,
            "state": "pending",
            "attempts": 0,
            "created_at": now,
            "next_attempt_at": now,
        }
        written += (await conn.execute(_insert(conn, values))).rowcount or 0
    return written


async def may_send(
    conn: AsyncConnection,
    program: Program,
    connection: connections.EhrConnection,
    kind: str,
    record_id: str,
    participant_id: str,
) -> bool:
    """A referral's status goes back only to the EHR it came from; everything else needs the
    participant's consent naming the hospital, for that kind of record."""
    if kind == "referral":
        r = ehr_referrals.c
        found = await conn.execute(
            select(r.pk).where(r.connection == connection.name, r.referral_id == record_id).limit(1)
        )
        return found.first() is not None
    return await boundary.granted(conn, program, connection.organization, participant_id, CONSENTED_TYPE[kind])


async def sendable(
    conn: AsyncConnection, program: Program, connection: connections.EhrConnection, rows: list[Claimed]
) -> set[int]:
    """``may_send`` for a batch, in two statements: the pks of the rows that may go."""
    allowed: set[int] = set()
    referrals = [r for r in rows if r.kind == "referral"]
    if referrals:
        r = ehr_referrals.c
        linked = set(
            (
                await conn.execute(
                    select(r.referral_id).where(
                        r.connection == connection.name, r.referral_id.in_([x.record_id for x in referrals])
                    )
                )
            ).scalars()
        )
        allowed |= {x.pk for x in referrals if x.record_id in linked}
    others = [r for r in rows if r.kind != "referral"]
    if others:
        patients = {x.participant_id: boundary.patient_id(program, x.participant_id) for x in others}
        granted = await boundary.granted_many(
            conn, program, connection.organization, sorted(set(patients.values())), sorted(set(CONSENTED_TYPE.values()))
        )
        allowed |= {x.pk for x in others if (patients[x.participant_id], CONSENTED_TYPE[x.kind]) in granted}
    return allowed


async def claim(
    conn: AsyncConnection,
    worker: str,
    now: datetime,
    *,
    lease: timedelta,
    limit: int,
    skip: frozenset[str] = frozenset(),
    only: str | None = None,
    behind: Sequence[int] = (),
    expire: bool = True,
) -> list[Claimed]:
    """Lease up to ``limit`` deliverable rows: due, of a connection not skipped (open circuit), and the
    oldest unfinished row of their participant at that connection, not counting the rows ``behind``
    (this worker's batch on its way to the EHR: what it claims now goes only once that one arrived).
    ``expire`` first returns the rows of workers whose leases ran out."""
    if expire:
        await _expire_leases(conn, now)
    older = outbox.alias("older")
    ahead = [
        older.c.connection == Q.connection,
        older.c.participant_id == Q.participant_id,
        older.c.pk < Q.pk,
        older.c.state.in_(UNFINISHED),
    ]
    if behind:
        ahead.append(older.c.pk.not_in(sorted(behind)))
    first_in_line = ~exists().where(*ahead)
    disabled = select(ehr_connections.c.name).where(ehr_connections.c.enabled.is_(False))
    # a disabled connection's rows wait, unclaimed and unchanged, until it is enabled again
    query = select(Q.pk).where(
        Q.state == "pending", Q.next_attempt_at <= now, first_in_line, Q.connection.not_in(disabled)
    )
    if skip:
        query = query.where(Q.connection.not_in(sorted(skip)))
    if only is not None:
        query = query.where(Q.connection == only)
    query = query.order_by(Q.pk).limit(limit)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True, of=outbox)
    pks = list((await conn.execute(query)).scalars())
    if not pks:
        return []
    await conn.execute(
        update(outbox).where(Q.pk.in_(pks)).values(state="sending", claimed_by=worker, claimed_until=now + lease)
    )
    rows = await conn.execute(select(outbox).where(Q.pk.in_(pks)).order_by(Q.pk))
    return [
        Claimed(r.pk, r.program_id, r.connection, r.kind, r.record_id, r.participant_id, r.attempts, r.created_at)
        for r in rows
    ]


async def _expire_leases(conn: AsyncConnection, now: datetime) -> None:
    """Rows of a worker that died go back to pending; where a newer change of the same record is
    already waiting, that one will carry the record's current state and the stale row is superseded."""
    twin = outbox.alias("twin")
    waiting_twin = exists().where(
        twin.c.connection == Q.connection,
        twin.c.kind == Q.kind,
        twin.c.record_id == Q.record_id,
        twin.c.state == "pending",
    )
    expired = and_(Q.state == "sending", Q.claimed_until < now)
    await conn.execute(
        update(outbox).where(expired, waiting_twin).values(state="superseded", finished_at=now, claimed_by=None)
    )
    await conn.execute(update(outbox).where(expired).values(state="pending", claimed_by=None, claimed_until=None))


async def finish(
    conn: AsyncConnection, pks: list[int], worker: str, state: str, now: datetime, reason: str | None
) -> int:
    """delivered, dead or withheld; only rows this worker still holds (a lease lost is not finished here)."""
    result = await conn.execute(
        update(outbox)
        .where(Q.pk.in_(pks), Q.state == "sending", Q.claimed_by == worker)
        .values(state=state, finished_at=now, claimed_by=None, claimed_until=None, last_error=reason)
    )
    return result.rowcount or 0


async def retry_later(conn: AsyncConnection, pk: int, worker: str, at: datetime, reason: str) -> None:
    await conn.execute(
        update(outbox)
        .where(Q.pk == pk, Q.state == "sending", Q.claimed_by == worker)
        .values(
            state="pending",
            attempts=Q.attempts + 1,
            next_attempt_at=at,
            claimed_by=None,
            claimed_until=None,
            last_error=reason[:500],
        )
    )


async def release(conn: AsyncConnection, worker: str, pks: Sequence[int] | None = None) -> int:
    """A worker gives back what it holds (all of it when shutting down), due at once, attempts unchanged."""
    condition = [Q.state == "sending", Q.claimed_by == worker]
    if pks is not None:
        condition.append(Q.pk.in_(pks))
    result = await conn.execute(
        update(outbox).where(*condition).values(state="pending", claimed_by=None, claimed_until=None)
    )
    return result.rowcount or 0


async def dead_letters(conn: AsyncConnection, connection: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
    query = select(outbox).where(Q.state == "dead").order_by(Q.pk.desc()).limit(limit)
    if connection is not None:
        query = query.where(Q.connection == connection)
    return [
        {
            "id": r.pk,
            "connection": r.connection,
            "kind": r.kind,
            "record_id": r.record_id,
            "attempts": r.attempts,
            "created_at": r.created_at.isoformat(),
            "failed_at": r.finished_at.isoformat() if r.finished_at else None,
            "reason": r.last_error,
        }
        for r in await conn.execute(query)
    ]


async def replay(conn: AsyncConnection, pks: list[int] | None, connection: str | None, now: datetime) -> int:
    """Dead letters back in the queue (all, of one connection, or the given ids)."""
    condition = [Q.state == "dead"]
    if pks:
        condition.append(Q.pk.in_(pks))
    if connection:
        condition.append(Q.connection == connection)
    rows = list(await conn.execute(select(Q.pk, Q.connection, Q.kind, Q.record_id).where(*condition)))
    replayed = 0
    for row in rows:
        waiting = await conn.execute(
            select(Q.pk).where(
                Q.connection == row.connection, Q.kind == row.kind, Q.record_id == row.record_id, Q.state == "pending"
            )
        )
        if waiting.first() is not None:  # a newer change of the record is queued already
            await conn.execute(update(outbox).where(Q.pk == row.pk).values(state="superseded", finished_at=now))
            continue
        await conn.execute(
            update(outbox)
            .where(Q.pk == row.pk)
            .values(state="pending", attempts=0, next_attempt_at=now, finished_at=None, last_error=None)
        )
        replayed += 1
    return replayed


async def backfill(
    conn: AsyncConnection, program: Program, connection: connections.EhrConnection, now: datetime
) -> int:
    """Queue every existing record the connection pushes (a new hospital gets the history). Rows are
    written once per record; what the EHR already holds unchanged is skipped at delivery, so running
    it again sends nothing twice. A disabled connection queues nothing new: a Conflict."""
    if not connection.enabled:
        raise Conflict(f"connection {connection.name} is disabled: enable it first")
    written = 0
    sources: dict[str, tuple[StoredKind[Any], str]] = {
        "encounter": (k.ENCOUNTERS, "encounter"),
        "note": (k.NOTES, "note"),
        "care-team": (k.CARE_TEAM_MEMBERS, "care_team_member"),
    }
    for outbox_kind, (stored, kind) in sources.items():
        if not connection.pushes(outbox_kind):
            continue
        repository: RecordRepository[Any] = RecordRepository(stored)
        cursor = None
        while True:
            page = await repository.list(conn, program.id, limit=500, cursor=cursor)
            for record in page.items:
                written += await enqueue_one(conn, program, connection, kind, record, now)
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
    return written


async def enqueue_one(
    conn: AsyncConnection,
    program: Program,
    connection: connections.EhrConnection,
    kind: str,
    record: Any,
    now: datetime,
) -> int:
    subject = await _subject(conn, program, kind, record)
    outbox_kind = OUTBOX_KIND[kind]
    if subject is None or not await may_send(conn, program, connection, outbox_kind, *subject):
        return 0
    values = {
        "program_id": program.id,
        "connection": connection.name,
        "kind": outbox_kind,
        "record_id": subject[0],
        "participant_id": subject[1],
        "state": "pending",
        "attempts": 0,
        "created_at": now,
        "next_attempt_at": now,
    }
    return (await conn.execute(_insert(conn, values))).rowcount or 0


async def depth(conn: AsyncConnection) -> dict[str, dict[str, Any]]:
    """Per connection: rows by state, and the age of the oldest waiting row."""
    rows = await conn.execute(
        select(Q.connection, Q.state, func.count(), func.min(Q.created_at)).group_by(Q.connection, Q.state)
    )
    found: dict[str, dict[str, Any]] = {}
    for name, state, count, oldest in rows:
        entry = found.setdefault(name, {"states": {}, "oldest_waiting": None})
        entry["states"][state] = count
        if state in UNFINISHED and oldest is not None:
            current = entry["oldest_waiting"]
            entry["oldest_waiting"] = oldest if current is None or oldest < current else current
    return found
