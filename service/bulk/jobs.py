"""Export jobs as rows of ``bulk_exports``: queued by the kick-off, claimed by a worker under a lease
(renewed while it runs; a job whose worker died is claimed again once the lease ran out and starts
over), then done (with its manifest), failed or cancelled. Expired jobs are deleted with their files."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from service.store.tables import bulk_exports

from .params import ExportRequest

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
ATTEMPTS = 3
"""Runs a job gets (a restart after a crash counts) before it is failed."""
B = bulk_exports.c


@dataclass(frozen=True)
class Job:
    id: str
    program_id: str
    client_id: str | None
    organization: str | None
    request_url: str
    request: ExportRequest
    state: str
    transaction_time: datetime
    created_at: datetime
    finished_at: datetime | None
    progress: int
    attempts: int
    manifest: dict[str, Any] | None
    error: str | None


def _job(row: Any) -> Job:
    return Job(
        row.id,
        row.program_id,
        row.client_id,
        row.organization,
        row.request,
        ExportRequest.from_json(dict(row.params)),
        row.state,
        row.transaction_time,
        row.created_at,
        row.finished_at,
        row.progress,
        row.attempts,
        row.manifest,
        row.error,
    )


async def create(
    conn: AsyncConnection,
    *,
    program_id: str,
    client_id: str | None,
    organization: str | None,
    request_url: str,
    request: ExportRequest,
    now: datetime,
    retention: timedelta,
) -> str:
    job_id = uuid.uuid4().hex
    await conn.execute(
        bulk_exports.insert().values(
            id=job_id,
            program_id=program_id,
            client_id=client_id,
            organization=organization,
            request=request_url[:2000],
            params=request.to_json(),
            state=QUEUED,
            transaction_time=now,
            created_at=now,
            expires_at=now + retention,
            attempts=0,
            progress=0,
        )
    )
    return job_id


async def get(conn: AsyncConnection, job_id: str, client_id: str | None) -> Job | None:
    """The job, if it is this client's (another client's job does not exist for it)."""
    query = select(bulk_exports).where(B.id == job_id[:64])
    query = query.where(B.client_id.is_(None) if client_id is None else B.client_id == client_id)
    row = (await conn.execute(query)).first()
    return None if row is None else _job(row)


async def claim(conn: AsyncConnection, worker: str, now: datetime, lease: timedelta) -> Job | None:
    """The oldest queued job, or a running one whose worker's lease ran out; None when there is none."""
    due = or_(B.state == QUEUED, and_(B.state == RUNNING, B.claimed_until < now))
    for _ in range(3):  # another worker may take the same row first: then try the next
        row = (await conn.execute(select(B.id, B.attempts).where(due).order_by(B.pk).limit(1))).first()
        if row is None:
            return None
        if row.attempts >= ATTEMPTS:
            await finish(conn, row.id, FAILED, now, error="the export was interrupted too often")
            continue
        taken = await conn.execute(
            update(bulk_exports)
            .where(B.id == row.id, due)
            .values(state=RUNNING, claimed_by=worker, claimed_until=now + lease, attempts=B.attempts + 1, progress=0)
        )
        if taken.rowcount == 1:
            found = (await conn.execute(select(bulk_exports).where(B.id == row.id))).first()
            return _job(found)
    return None


async def renew(
    conn: AsyncConnection, job_id: str, worker: str, now: datetime, lease: timedelta, progress: int
) -> bool:
    """Extend the lease and record the progress; False when the job is no longer this worker's
    (cancelled, or taken over after a lease that ran out)."""
    result = await conn.execute(
        update(bulk_exports)
        .where(B.id == job_id, B.state == RUNNING, B.claimed_by == worker)
        .values(claimed_until=now + lease, progress=progress)
    )
    return result.rowcount == 1


async def release(conn: AsyncConnection, worker: str) -> None:
    """A stopping worker gives its running jobs back (they start again elsewhere, at once)."""
    await conn.execute(
        update(bulk_exports)
        .where(B.state == RUNNING, B.claimed_by == worker)
        .values(state=QUEUED, claimed_by=None, claimed_until=None, attempts=B.attempts - 1)
    )


async def finish(
    conn: AsyncConnection,
    job_id: str,
    state: str,
    now: datetime,
    *,
    retention: timedelta | None = None,
    worker: str | None = None,
    manifest: dict[str, Any] | None = None,
    error: str | None = None,
    progress: int | None = None,
) -> bool:
    where = [B.id == job_id]
    if worker is not None:
        where += [B.state == RUNNING, B.claimed_by == worker]
    values: dict[str, Any] = {"state": state, "finished_at": now, "claimed_by": None, "claimed_until": None}
    if retention is not None:
        values["expires_at"] = now + retention
    if manifest is not None:
        values["manifest"] = manifest
    if error is not None:
        values["error"] = error[:500]
    if progress is not None:
        values["progress"] = progress
    result = await conn.execute(update(bulk_exports).where(*where).values(**values))
    return result.rowcount == 1


async def remove(conn: AsyncConnection, job_id: str) -> None:
    await conn.execute(delete(bulk_exports).where(B.id == job_id))


async def expired(conn: AsyncConnection, now: datetime, limit: int = 100) -> list[str]:
    """Jobs past their time (a running one is left to its worker)."""
    rows = await conn.execute(
        select(B.id).where(B.expires_at < now, B.state != RUNNING).order_by(B.expires_at).limit(limit)
    )
    return [str(row.id) for row in rows]
