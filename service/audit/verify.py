"""`peerlink audit verify`: walk the chain and name the first record that was changed, removed or
inserted.

The walk reads one consistent snapshot of the database. It checks, in order:
1. the archive anchors follow each other (each archive starts where the one before ended, from the
   genesis value for the first);
2. with an archive folder, every archived file: its records chain from the anchor before it, its
   last record's hash is its anchor, its bytes match the SHA-256 the anchor noted;
3. the live records, from the newest anchor (or the genesis value): every record's hash, every link
   and the sequence (see :class:`service.audit.chain.ChainChecker` for how each break is named), and
   that each record's search-index rows (audit_entities) are what its detail says;
4. optionally a head noted earlier (``--head SEQ:HASH``) is still there, unchanged: a hash chain
   alone cannot tell that its newest records were cut off, a head kept elsewhere can.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from service.store import Database
from service.store.tables import audit_anchors, audit_entities, audit_log

from .chain import GENESIS, ChainChecker, Problem, entities_of

BATCH = 5000


@dataclass
class VerifyReport:
    problem: Problem | None = None
    live_checked: int = 0
    archived_checked: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    head_hash: str = GENESIS
    anchors: int = 0
    files: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.problem is None

    def summary(self) -> str:
        if self.problem is not None:
            return f"audit chain BROKEN: {self.problem.message}"
        if self.last_seq is None:
            span = "no live records"
        else:
            span = f"{self.live_checked} live records (seq {self.first_seq}..{self.last_seq})"
        archived = f", {self.archived_checked} archived records in {len(self.files)} files" if self.files else ""
        anchors = f", {self.anchors} archive anchors" if self.anchors else ""
        return f"audit chain OK: {span}{archived}{anchors}; head {self.last_seq or 0}:{self.head_hash}"


@asynccontextmanager
async def snapshot(database: Database) -> AsyncIterator[AsyncConnection]:
    """A read-only connection that sees one moment of the database throughout."""
    if database.is_sqlite:
        async with database.read_engine.connect() as conn:
            await conn.exec_driver_sql("BEGIN")  # deferred: a WAL read snapshot, no write lock
            try:
                yield conn
            finally:
                await conn.exec_driver_sql("ROLLBACK")
        return
    async with database.engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="REPEATABLE READ")
        async with conn.begin():
            yield conn


def parse_head(value: str) -> tuple[int, str]:
    seq, colon, digest = value.partition(":")
    if not colon or not seq.isdigit() or len(digest) != 64:
        raise ValueError("--head takes SEQ:HASH as printed by a previous verify (hash: 64 hex digits)")
    return int(seq), digest.lower()


def archive_rows(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


async def verify(
    database: Database, *, archive_dir: Path | None = None, head: tuple[int, str] | None = None, batch: int = BATCH
) -> VerifyReport:
    report = VerifyReport()
    seen_head: str | None = None
    async with snapshot(database) as conn:
        anchors = [
            dict(r) for r in (await conn.execute(select(audit_anchors).order_by(audit_anchors.c.last_seq))).mappings()
        ]
        report.anchors = len(anchors)
        expected_seq, prev = 1, GENESIS
        for anchor in anchors:
            if anchor["first_seq"] != expected_seq or anchor["prev_hash"] != prev:
                report.problem = Problem(
                    expected_seq,
                    "anchor",
                    f"the archive anchor of records {anchor['first_seq']}..{anchor['last_seq']} does not continue "
                    f"the chain (records from {expected_seq} expected, after hash {prev[:12]}…)",
                )
                return report
            if archive_dir is not None:
                problem, count, found = _verify_file(archive_dir, anchor, head)
                report.archived_checked += count
                report.files.append(Path(anchor["file"]).name)
                seen_head = found or seen_head
                if problem is not None:
                    report.problem = problem
                    return report
            expected_seq, prev = int(anchor["last_seq"]) + 1, str(anchor["hash"])
        if archive_dir is not None:
            strays = _unanchored(archive_dir, {Path(a["file"]).name for a in anchors})
            if strays:
                report.notes.append(f"files no anchor names (not verified): {', '.join(strays)}")
        elif anchors:
            report.notes.append(
                f"records 1..{anchors[-1]['last_seq']} are archived; pass --archive DIR to verify them too"
            )

        checker = ChainChecker(expected_seq, prev, label="")
        index_problem: Problem | None = None
        after = expected_seq - 1
        live_head: str | None = None
        while checker.ok:
            statement = select(audit_log).where(audit_log.c.seq > after).order_by(audit_log.c.seq).limit(batch)
            rows = [dict(r) for r in (await conn.execute(statement)).mappings()]
            if not rows:
                break
            if head is not None:
                live_head = next((str(r["hash"]) for r in rows if r["seq"] == head[0]), live_head)
            if report.first_seq is None:
                report.first_seq = int(rows[0]["seq"])
            checker.feed_all(rows)
            if index_problem is None:
                index_problem = await _check_index(conn, rows)
            after = int(rows[-1]["seq"])
        checker.finish()
        problems = [p for p in (checker.problem, index_problem) if p is not None]
        if problems:
            report.problem = min(problems, key=lambda p: p.seq)
            return report
        report.live_checked = checker.checked
        report.last_seq = checker.last_seq if checker.last_seq is not None else (expected_seq - 1 if anchors else None)
        report.head_hash = checker.prev_hash
        if head is not None:
            report.problem = _check_head(head, seen_head or live_head, report.last_seq or 0)
    return report


def _unanchored(directory: Path, known: set[str]) -> list[str]:
    return sorted(p.name for p in directory.glob("audit-*.ndjson") if p.name not in known)


def _check_head(head: tuple[int, str], found: str | None, last_seq: int) -> Problem | None:
    seq, digest = head
    if found is None:
        if seq > last_seq:
            return Problem(
                last_seq + 1,
                "removed",
                f"record {seq} (the head noted earlier) is gone: records {last_seq + 1}..{seq} were removed",
            )
        return Problem(seq, "head", f"record {seq} (the head noted earlier) is archived; pass --archive DIR")
    if found != digest:
        return Problem(seq, "changed", f"record {seq} is not the head noted earlier (its hash differs)")
    return None


async def _check_index(conn: AsyncConnection, rows: list[dict[str, Any]]) -> Problem | None:
    low, high = int(rows[0]["seq"]), int(rows[-1]["seq"])
    stored: dict[int, set[tuple[str, str]]] = defaultdict(set)
    statement = select(audit_entities.c.seq, audit_entities.c.kind, audit_entities.c.ref).where(
        audit_entities.c.seq >= low, audit_entities.c.seq <= high
    )
    for seq, kind, ref in (await conn.execute(statement)).all():
        stored[int(seq)].add((kind, ref))
    for row in rows:
        seq = int(row["seq"])
        if stored.get(seq, set()) != set(entities_of(row["detail"] or {}, row["subtype"])):
            return Problem(seq, "index", f"record {seq}: its search index (audit_entities) was changed")
    return None


def _verify_file(
    directory: Path, anchor: dict[str, Any], head: tuple[int, str] | None
) -> tuple[Problem | None, int, str | None]:
    name = Path(anchor["file"]).name
    path = directory / name
    first, last = int(anchor["first_seq"]), int(anchor["last_seq"])
    if not path.is_file():
        return Problem(first, "file", f"archive file {name} (records {first}..{last}) is missing"), 0, None
    checker = ChainChecker(first, str(anchor["prev_hash"]), label=name)
    found_head = None
    try:
        rows = archive_rows(path)
    except orjson.JSONDecodeError:
        return Problem(first, "file", f"archive file {name} is not NDJSON"), 0, None
    for row in rows:
        if head is not None and row.get("seq") == head[0]:
            found_head = str(row.get("hash"))
        if not checker.feed(row):
            break
    problem = checker.finish()
    if problem is not None:
        return problem, checker.checked, found_head
    if checker.last_seq != last or checker.prev_hash != anchor["hash"]:
        cut = (checker.last_seq or first - 1) + 1
        return (
            Problem(cut, "removed", f"{name}: records {cut}..{last} were removed (the file ends before its anchor)"),
            checker.checked,
            found_head,
        )
    if _file_sha256(path) != anchor["file_sha256"]:
        return Problem(first, "file", f"{name}: the file's bytes changed (its records still chain)"), 0, found_head
    return None, checker.checked, found_head
