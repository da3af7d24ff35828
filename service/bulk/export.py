"""One export job run: for each type, the stored canonical bytes (``fhir_resources.body``) of the
resources it covers, written a line each to ``Type.ndjson`` without being parsed or serialized again.

What a job covers is what a search by the same client covers: the program's rows of the type, inside
the client's data boundary (``service.auth.boundary.visible``, the condition every read and search
carries), matching the ``_typeFilter`` queries (compiled by the search engine's own compiler), changed
after ``_since`` and not after the job's transactionTime; for a Patient-level export only resources in
a Patient compartment, for a Group-level one only those of the Group's members. Rows are read in
keyset chunks in the order of the (program, type, id) key (no sort), so memory stays flat however
large the export. Every half second the lease is renewed and the progress recorded; a job cancelled
(or taken over) meanwhile stops there.

A finished export is audited in the transaction that marks it done: one record of the export, and for
a partner organisation's client one disclosure record per participant whose data it received (what
the accounting of disclosures lists).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import ColumnElement, and_, or_, select

from service.audit import AuditRecord, write_many
from service.auth.boundary import visible
from service.fhir.search.sql import Compiler
from service.store import Database
from service.store.tables import fhir_resources

from . import jobs
from .groups import members_query
from .params import ExportRequest, queries
from .storage import Storage

log = logging.getLogger("peerlink.bulk")
R = fhir_resources.c
ERRORS_FILE = "OperationOutcome.ndjson"
RENEW_SECONDS = 0.5
"""How often a running export renews its lease, records its progress and sees a cancellation."""


@dataclass(frozen=True)
class Settings:
    chunk: int
    lease: timedelta
    retention: timedelta


def conditions(job: jobs.Job, resource_type: str) -> list[ColumnElement[bool]]:
    """What a row must meet to be in the job's file of ``resource_type``."""
    request: ExportRequest = job.request
    where: list[ColumnElement[bool]] = [
        R.program_id == job.program_id,
        R.resource_type == resource_type,
        R.last_updated <= job.transaction_time,
    ]
    since = request.since_moment
    if since is not None:
        where.append(R.last_updated > since)
    inside = visible(job.organization, resource_type=resource_type)
    if inside is not None:
        where.append(inside)
    if request.level == "patient":
        where.append(R.patient_id.is_not(None))
    elif request.level == "group" and request.group is not None:
        where.append(R.patient_id.in_(members_query(job.program_id, request.group)))
    filters = queries(request, resource_type)
    if filters:
        compiler = Compiler(job.program_id, resource_type)
        where.append(or_(*(and_(*compiler.criteria(q.criteria)) for q in filters)))
    return where


class Stopped(Exception):
    """The job is no longer this worker's (cancelled, taken over) or the worker is stopping."""


async def run(
    database: Database,
    storage: Storage,
    job: jobs.Job,
    worker: str,
    settings: Settings,
    stop: asyncio.Event | None = None,
) -> bool:
    """Run the job to its end; True when it is done (False: stopped, and its files removed)."""
    await asyncio.to_thread(storage.reset, job.id)
    output: list[dict[str, Any]] = []
    written = 0
    disclosed: dict[str, list[str]] = defaultdict(list)
    partner = job.organization is not None
    renewed = -float("inf")
    try:
        for resource_type in job.request.types:
            count = 0
            where = conditions(job, resource_type)
            last = ""
            with storage.open(job.id, f"{resource_type}.ndjson") as out:
                while True:
                    async with database.read() as conn:
                        rows = (
                            await conn.execute(
                                select(R.resource_id, R.patient_id, R.body)
                                .where(*where, R.resource_id > last)
                                .order_by(R.resource_id)  # the (program, type, id) key: no sort
                                .limit(settings.chunk)
                            )
                        ).all()
                    if not rows:
                        break
                    out.write(b"".join(bytes(row.body) + b"\n" for row in rows))
                    if partner:
                        for row in rows:
                            if row.patient_id is not None:
                                disclosed[row.patient_id].append(f"{resource_type}/{row.resource_id}")
                    last = rows[-1].resource_id
                    count += len(rows)
                    written += len(rows)
                    if time.monotonic() >= renewed + RENEW_SECONDS or (stop is not None and stop.is_set()):
                        await _renew(database, job, worker, settings, written, stop)
                        renewed = time.monotonic()
            if not count:  # a type with nothing to export has no file
                await asyncio.to_thread(storage.discard, job.id, f"{resource_type}.ndjson")
                continue
            await asyncio.to_thread(storage.finish, job.id, f"{resource_type}.ndjson")
            output.append({"type": resource_type, "file": f"{resource_type}.ndjson", "count": count})
        errors = []
        if job.request.notes:
            with storage.open(job.id, ERRORS_FILE) as out:
                out.write(b"".join(orjson.dumps(outcome(note)) + b"\n" for note in job.request.notes))
            await asyncio.to_thread(storage.finish, job.id, ERRORS_FILE)
            errors.append({"type": "OperationOutcome", "file": ERRORS_FILE, "count": len(job.request.notes)})
    except Stopped:
        await asyncio.to_thread(storage.delete, job.id)
        return False
    manifest = {"output": output, "error": errors}
    now = datetime.now(UTC)
    async with database.transaction() as conn:
        done = await jobs.finish(
            conn,
            job.id,
            jobs.DONE,
            now,
            retention=settings.retention,
            worker=worker,
            manifest=manifest,
            progress=written,
        )
        if done:
            await write_many(conn, audit_records(job, output, disclosed, now))
    if not done:
        await asyncio.to_thread(storage.delete, job.id)
    return done


async def _renew(
    database: Database, job: jobs.Job, worker: str, settings: Settings, written: int, stop: asyncio.Event | None
) -> None:
    if stop is not None and stop.is_set():
        async with database.transaction() as conn:
            await jobs.release(conn, worker)
        raise Stopped
    async with database.transaction() as conn:
        mine = await jobs.renew(conn, job.id, worker, datetime.now(UTC), settings.lease, written)
    if not mine:
        raise Stopped


def outcome(note: str) -> dict[str, Any]:
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "warning", "code": "not-supported", "diagnostics": note}],
    }


def audit_records(
    job: jobs.Job, output: list[dict[str, Any]], disclosed: dict[str, list[str]], now: datetime
) -> list[AuditRecord]:
    """The export's record, and a disclosure record per participant when a partner received it."""

    def record(detail: dict[str, Any]) -> AuditRecord:
        base = {"export": job.id, "query": job.request_url, "interaction": "operation"}
        return AuditRecord(
            "rest",
            "export",
            "E",
            "0",
            client_id=job.client_id,
            organization=job.organization,
            program_id=job.program_id,
            detail={**base, **detail},
            recorded=now,
        )

    records = [record({"counts": {o["type"]: o["count"] for o in output}})]
    records += [record({"patients": [pid], "entities": sorted(refs)}) for pid, refs in sorted(disclosed.items())]
    return records
