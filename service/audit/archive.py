"""Retention: records older than the horizon move to NDJSON files; the chain continues from an anchor.

One run archives the oldest live records, in seq order, up to the newest record older than the
horizon — but never the newest record of all (the tail the writers extend stays live, so writers
never wait for the archiver) — into ``audit-<first seq>-<last seq>.ndjson`` (12-digit seqs, so the
files sort in chain order): one stored record per line, every column, ``recorded`` in the canonical
UTC form, so each line's hash can be recomputed from the line alone. Beside it,
``audit-<first>-<last>.anchor.json`` holds the anchor: the hash of the last archived record, from
which the live chain continues, the hash the archive started from, the time span and the file's
SHA-256; the same anchor is a row of ``audit_anchors``.

The order makes a crash harmless: (1) the records are read and their chain checked (a broken chain
is refused: archiving must never launder tampering) while the file is written and synced under a
temporary name; (2) one transaction inserts the anchor, deletes the archived records and their
index rows — on PostgreSQL after ``SET LOCAL peerlink.audit_archive = on``, the one setting under
which the append-only trigger lets rows be deleted — and the file takes its final name before the
commit. A failed commit leaves a file that the next run rewrites; records are never deleted
without their file. The run itself is audited (admin ``audit-archive``).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import orjson
from sqlalchemy import delete, func, insert, select, text

from service.store import Database
from service.store.tables import audit_anchors, audit_entities, audit_log

from .chain import GENESIS, STORED_COLUMNS, ChainChecker, instant
from .writer import AuditRecord, write

ARCHIVE_LOCK = 0x5045_4552_4C4B_4152  # "PEERLKAR": one archiver at a time (PostgreSQL)
BATCH = 5000


class ArchiveRefused(RuntimeError):
    """The records to archive do not verify; nothing was archived."""


@dataclass(frozen=True)
class ArchiveResult:
    file: Path
    first_seq: int
    last_seq: int
    count: int
    anchor: str
    recorded_from: datetime
    recorded_to: datetime


def file_name(first_seq: int, last_seq: int) -> str:
    return f"audit-{first_seq:012d}-{last_seq:012d}.ndjson"


def archive_line(row: dict[str, Any]) -> bytes:
    document = {name: row[name] for name in STORED_COLUMNS}
    document["recorded"] = instant(row["recorded"])
    return orjson.dumps(document, option=orjson.OPT_SORT_KEYS) + b"\n"


async def _start(database: Database) -> tuple[int, str]:
    async with database.read() as conn:
        anchor = (
            await conn.execute(
                select(audit_anchors.c.last_seq, audit_anchors.c.hash)
                .order_by(audit_anchors.c.last_seq.desc())
                .limit(1)
            )
        ).first()
    return (int(anchor.last_seq) + 1, str(anchor.hash)) if anchor is not None else (1, GENESIS)


async def _last_to_archive(database: Database, before: datetime) -> int | None:
    """The highest seq such that it and every record before it are older than ``before``, never the
    newest record."""
    async with database.read() as conn:
        newest = (await conn.execute(select(func.max(audit_log.c.seq)))).scalar()
        young = (await conn.execute(select(func.min(audit_log.c.seq)).where(audit_log.c.recorded >= before))).scalar()
    if newest is None:
        return None
    limit = int(newest) - 1
    if young is not None:
        limit = min(limit, int(young) - 1)
    return limit


class _ArchiveFile:
    """The NDJSON file being written: under a temporary name until the anchor commits."""

    def __init__(self, directory: Path, name: str) -> None:
        self.directory = directory
        self.name = name
        self.final = directory / name
        self.temporary = directory / f".{name}.partial"
        self.digest = hashlib.sha256()
        self.handle: BinaryIO | None = None

    def open(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.handle = self.temporary.open("wb")

    def write(self, lines: list[bytes]) -> None:
        assert self.handle is not None
        for line in lines:
            self.handle.write(line)
            self.digest.update(line)

    def close(self) -> None:
        if self.handle is not None:
            self.handle.flush()
            os.fsync(self.handle.fileno())
            self.handle.close()
            self.handle = None

    def discard(self) -> None:
        if self.handle is not None:
            self.handle.close()
            self.handle = None
        self.temporary.unlink(missing_ok=True)

    def publish(self, sidecar: dict[str, Any]) -> None:
        anchor_file = self.directory / self.name.replace(".ndjson", ".anchor.json")
        anchor_file.write_bytes(orjson.dumps(sidecar, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
        self.temporary.replace(self.final)


async def archive(database: Database, directory: Path, before: datetime, *, batch: int = BATCH) -> ArchiveResult | None:
    """Archive the live records recorded before ``before`` (see the module docstring); None when
    there is nothing to archive."""
    first_seq, prev_hash = await _start(database)
    last_seq = await _last_to_archive(database, before)
    if last_seq is None or last_seq < first_seq:
        return None
    out = _ArchiveFile(directory, file_name(first_seq, last_seq))
    await asyncio.to_thread(out.open)
    try:
        result = await _copy_and_anchor(database, out, first_seq, prev_hash, last_seq, batch)
    except BaseException:
        await asyncio.to_thread(out.discard)
        raise
    return result


async def _copy_and_anchor(
    database: Database, out: _ArchiveFile, first_seq: int, prev_hash: str, last_seq: int, batch: int
) -> ArchiveResult:
    checker = ChainChecker(first_seq, prev_hash, label="archive")
    oldest: datetime | None = None
    newest: datetime | None = None
    after = first_seq - 1
    while after < last_seq:
        async with database.read() as conn:
            statement = (
                select(audit_log)
                .where(audit_log.c.seq > after, audit_log.c.seq <= last_seq)
                .order_by(audit_log.c.seq)
                .limit(batch)
            )
            rows = [dict(r) for r in (await conn.execute(statement)).mappings()]
        if not rows or not checker.feed_all(rows):
            break
        await asyncio.to_thread(out.write, [archive_line(row) for row in rows])
        for row in rows:
            oldest = row["recorded"] if oldest is None else min(oldest, row["recorded"])
            newest = row["recorded"] if newest is None else max(newest, row["recorded"])
        after = int(rows[-1]["seq"])
    await asyncio.to_thread(out.close)
    problem = checker.finish()
    if problem is not None:
        raise ArchiveRefused(f"nothing archived: the chain is broken ({problem.message}); run peerlink audit verify")
    if checker.last_seq != last_seq or oldest is None or newest is None:
        missing = f"{(checker.last_seq or first_seq - 1) + 1}..{last_seq}"
        raise ArchiveRefused(f"nothing archived: records {missing} are missing; run peerlink audit verify")
    anchor = checker.prev_hash
    archived_at = datetime.now(UTC)
    sidecar = {
        "file": out.name,
        "first_seq": first_seq,
        "last_seq": last_seq,
        "count": checker.checked,
        "prev_hash": prev_hash,
        "anchor_hash": anchor,
        "recorded_from": instant(oldest),
        "recorded_to": instant(newest),
        "file_sha256": out.digest.hexdigest(),
        "archived_at": instant(archived_at),
    }
    async with database.transaction() as conn:
        if conn.dialect.name == "postgresql":
            await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ARCHIVE_LOCK})
        current = (await conn.execute(select(func.max(audit_anchors.c.last_seq)))).scalar()
        if (int(current) if current is not None else 0) != first_seq - 1:
            raise ArchiveRefused("nothing archived: another archive run finished first; run it again")
        await conn.execute(
            insert(audit_anchors).values(
                first_seq=first_seq,
                last_seq=last_seq,
                prev_hash=prev_hash,
                hash=anchor,
                recorded_from=oldest,
                recorded_to=newest,
                file=out.name,
                file_sha256=sidecar["file_sha256"],
                archived_at=archived_at,
            )
        )
        if conn.dialect.name == "postgresql":
            await conn.execute(text("SET LOCAL peerlink.audit_archive = 'on'"))
        await conn.execute(delete(audit_entities).where(audit_entities.c.seq.between(first_seq, last_seq)))
        await conn.execute(delete(audit_log).where(audit_log.c.seq.between(first_seq, last_seq)))
        await asyncio.to_thread(out.publish, sidecar)
    return ArchiveResult(out.final, first_seq, last_seq, checker.checked, anchor, oldest, newest)


async def archive_and_record(
    database: Database, directory: Path, before: datetime, *, actor: str | None = None, address: str | None = None
) -> ArchiveResult | None:
    """Archive, then record the run in the audit log (the chain continues after the anchor)."""
    result = await archive(database, directory, before)
    detail: dict[str, Any] = {"before": instant(before)}
    if result is not None:
        detail |= {
            "file": result.file.name,
            "first_seq": result.first_seq,
            "last_seq": result.last_seq,
            "count": result.count,
            "anchor": result.anchor,
        }
    record = AuditRecord("admin", "audit-archive", "D", "0", client_id=actor, address=address, detail=detail)
    await write(database, record)
    return result
