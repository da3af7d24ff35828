"""The transactional outbox: written in the transaction of every change an EHR should see (by the
change hub, ``service.records.changes``, through ``service.records.outbox_rows``), claimed by workers,
finished as delivered, retried, dead-lettered or withheld.

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

from sqlalchemy import and_, exists, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from service.auth import boundary
from service.domain import Program
from service.domain.errors import Conflict
from service.records.outbox_rows import CONSENTED_TYPE, enqueue_one
from service.records.outbox_rows import may_send as may_send
from service.store import RecordRepository
from service.store import kinds as k
from service.store.repository import StoredKind
from service.store.tables import ehr_connections, ehr_referrals, outbox

from . import connections

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
    conn: AsyncConnection,
    pks: list[int],
    worker: str,
    state: str,
    now: datetime,
    reason: str | None,
    *,
    ehr_status: int | None = None,
    ehr_outcome: str | None = None,
) -> int:
    """delivered, dead or withheld; only rows this worker still holds (a lease lost is not finished here).
    A dead letter keeps what the EHR answered: its status and OperationOutcome (``refusal``)."""
    result = await conn.execute(
        update(outbox)
        .where(Q.pk.in_(pks), Q.state == "sending", Q.claimed_by == worker)
        .values(
            state=state,
            finished_at=now,
            claimed_by=None,
            claimed_until=None,
            last_error=reason,
            ehr_status=ehr_status,
            ehr_outcome=ehr_outcome[:500] if ehr_outcome else None,
        )
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
            "ehr_status": r.ehr_status,
            "ehr_outcome": r.ehr_outcome,
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
            .values(
                state="pending",
                attempts=0,
                next_attempt_at=now,
                finished_at=None,
                last_error=None,
                ehr_status=None,
                ehr_outcome=None,
            )
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
        "assessment": (k.ASSESSMENTS, "assessment"),
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
