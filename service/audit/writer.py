"""Writes audit records: one writer for every access, refusal, token, exchange and admin action.

``write(connection, record)`` appends the record in the caller's transaction: a change and its audit
record commit together or not at all. Call it as the **last** statement of the transaction: on
PostgreSQL it takes the chain's advisory lock, held until the commit.

``write(database, record)`` (reads, searches, refusals, tokens) returns once the record is committed,
so a read is recorded before its response is released. Records written this way by concurrent
requests are committed together (group commit: one transaction, one commit, one chain-lock round for
all the records that arrived while the previous batch was being written), which is what keeps
auditing every read cheap: on a SQLite file the batch is written by a plain driver connection, on
the event loop when the write lock is free (a worker thread waits for it otherwise); on PostgreSQL
by one statement, ``peerlink_audit_append`` (migration 0005), on a connection kept while batches
keep coming. A record that cannot be written raises :class:`AuditUnavailable` (503).

Chain rule (the same for every writer, process and replica): inside the transaction, take the chain
lock — ``pg_advisory_xact_lock(CHAIN_LOCK)`` on PostgreSQL; on SQLite every write transaction
already holds the database's write lock (BEGIN IMMEDIATE) — then read the tail (the record with the
highest seq; with none, the newest archive anchor; with none, the genesis value), and append
seq + 1, seq + 2, ... each holding the hash of the one before. So concurrent writers build one chain.

``detail`` keys the rest of PeerLink uses: ``patients`` (Patient ids whose data was returned or
changed), ``entities`` ("Type/id" touched), ``query`` (a search's query string; it may hold PHI, and
the audit store is the protected place for it, never the logs), ``purpose`` (purpose of use),
``status`` (HTTP status), ``reason`` (why refused), ``endpoint`` (EHR connection name), and
optionally ``interaction`` (a FHIR restful-interaction code, e.g. history-type, when the subtype
alone does not say). Values are kept as JSON that both databases give back unchanged (the hash
covers them): floats are stored as text, NUL characters and lone surrogates replaced, other values
(datetimes, UUIDs ...) as their text.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import sqlite3
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import orjson
import structlog
from sqlalchemy import insert, select, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection

from service.domain.errors import PeerLinkError
from service.store import Database
from service.store.database import SQLITE_BUSY_TIMEOUT_MS
from service.store.tables import audit_anchors, audit_entities, audit_log

from .chain import GENESIS, canonical_parts, entities_of, join_parts

Action = Literal["C", "R", "U", "D", "E"]
Outcome = Literal["0", "4", "8", "12"]
"""FHIR AuditEvent.outcome: 0 success, 4 minor failure (refused), 8 serious failure, 12 major failure."""

CHAIN_LOCK = 0x5045_4552_4C4B_4155  # "PEERLKAU": the PostgreSQL advisory lock of the audit chain
MAX_BATCH = 500
log = structlog.get_logger("peerlink.audit")


class AuditUnavailable(PeerLinkError):
    """The audit record could not be written: the request it describes must not succeed."""

    status = 503
    fhir_code = "transient"
    title = "Service unavailable"


@dataclass(frozen=True)
class AuditRecord:
    type: str
    """rest, security (tokens and refusals), admin, exchange."""
    subtype: str
    """read, vread, search, history, create, update, patch, transaction, peer-read, peer-list,
    peer-create, peer-update, peer-action; token, access-refused; deliver, poll; client-add, ..."""
    action: Action
    outcome: Outcome
    client_id: str | None = None
    organization: str | None = None
    address: str | None = None
    program_id: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    recorded: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass(frozen=True)
class _Prepared:
    values: dict[str, Any]
    """The columns but seq, prev_hash and hash (detail as plain JSON values)."""
    detail_json: bytes
    """detail as canonical JSON (keys sorted)."""
    entities: list[tuple[str, str]]
    parts: tuple[bytes, bytes, bytes]
    """The canonical form around prev_hash and seq (service.audit.chain.canonical_parts)."""


_LIMITS = {"type": 40, "subtype": 40, "action": 1, "outcome": 2, "program_id": 64, "client_id": 100}
_LIMITS |= {"organization": 300, "address": 100}


def _clean_text(value: str) -> str:
    if "\x00" in value:
        value = value.replace("\x00", "\ufffd")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            value = value.encode("utf-8", "replace").decode("utf-8")
    return value


def _clean(value: Any) -> Any:
    """Plain JSON that both databases give back unchanged: no NUL characters (PostgreSQL refuses
    them), no lone surrogates, floats as text, other values as JSON or their text."""
    kind = type(value)
    if kind is str:
        return _clean_text(value)
    if value is None or kind is int or kind is bool:
        return value
    if kind is list or kind is tuple:
        return [_clean(v) for v in value]
    if kind is dict:
        return {(k if type(k) is str else str(k)): _clean(v) for k, v in value.items()}
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str | int):
        return _clean(str(value) if isinstance(value, str) else int(value))
    if isinstance(value, list | tuple | set | frozenset):
        return [_clean(v) for v in value]
    if isinstance(value, dict):
        return _clean(dict(value))
    return _clean(orjson.loads(orjson.dumps(value, default=str)))


def _is_clean(value: Any) -> bool:
    """Already what :func:`_clean` would make of it (the usual case: no copy needed)."""
    kind = type(value)
    if kind is str:
        return "\x00" not in value and (value.isascii() or _clean_text(value) == value)
    if value is None or kind is int or kind is bool:
        return True
    if kind is list:
        return all(_is_clean(item) for item in value)
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str or not _is_clean(key) or not _is_clean(item):
                return False
        return True
    return False


def _text(name: str, value: str | None) -> str | None:
    if value is None:
        return None
    return _clean_text(str(value))[: _LIMITS[name]]


def prepare(record: AuditRecord) -> _Prepared:
    recorded = record.recorded if record.recorded.tzinfo else record.recorded.replace(tzinfo=UTC)
    detail = record.detail if _is_clean(record.detail) and type(record.detail) is dict else _clean(record.detail)
    if type(detail) is not dict:
        detail = {"value": detail}
    values = {
        "recorded": recorded.astimezone(UTC),
        "program_id": _text("program_id", record.program_id),
        "type": _text("type", record.type) or "",
        "subtype": _text("subtype", record.subtype) or "",
        "action": _text("action", record.action) or "E",
        "outcome": _text("outcome", record.outcome) or "0",
        "client_id": _text("client_id", record.client_id),
        "organization": _text("organization", record.organization),
        "address": _text("address", record.address),
        "detail": detail,
    }
    detail_json = orjson.dumps(detail, option=orjson.OPT_SORT_KEYS)
    parts = canonical_parts({**values, "detail": orjson.Fragment(detail_json)})
    return _Prepared(values, detail_json, entities_of(detail, str(values["subtype"])), parts)


def _chain(prepared: Sequence[_Prepared], seq: int, prev: str) -> list[tuple[_Prepared, int, str, str]]:
    """(record, seq, prev_hash, hash) for records appended after (seq, prev): the hash is SHA-256 of
    the canonical form (service.audit.chain.canonical), joined from the parts prepare() made."""
    chained = []
    for item in prepared:
        seq += 1
        digest = hashlib.sha256(join_parts(item.parts, seq, prev)).hexdigest()
        chained.append((item, seq, prev, digest))
        prev = digest
    return chained


async def lock_chain(conn: AsyncConnection) -> None:
    """Serialize appends to the chain (PostgreSQL; SQLite writers hold the database's write lock)."""
    if conn.dialect.name == "postgresql":
        await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": CHAIN_LOCK})


async def tail(conn: AsyncConnection) -> tuple[int, str]:
    """(seq, hash) the next record follows: the newest record, else the newest anchor, else genesis."""
    newest = select(audit_log.c.seq, audit_log.c.hash).order_by(audit_log.c.seq.desc()).limit(1)
    last = (await conn.execute(newest)).first()
    if last is not None:
        return int(last.seq), str(last.hash)
    anchored = select(audit_anchors.c.last_seq, audit_anchors.c.hash).order_by(audit_anchors.c.last_seq.desc())
    anchor = (await conn.execute(anchored.limit(1))).first()
    if anchor is not None:
        return int(anchor.last_seq), str(anchor.hash)
    return 0, GENESIS


async def _append_locked(conn: AsyncConnection, prepared: Sequence[_Prepared]) -> int:
    seq, prev = await tail(conn)
    rows: list[dict[str, Any]] = []
    index: list[dict[str, Any]] = []
    for item, number, before, digest in _chain(prepared, seq, prev):
        rows.append({**item.values, "seq": number, "prev_hash": before, "hash": digest})
        index.extend({"seq": number, "kind": kind, "ref": ref} for kind, ref in item.entities)
        seq = number
    await conn.execute(insert(audit_log), rows)
    if index:
        await conn.execute(insert(audit_entities), index)
    return seq


async def append(conn: AsyncConnection, records: Sequence[AuditRecord]) -> int:
    """Append records in the caller's transaction; returns the last seq written."""
    prepared = [prepare(r) for r in records]
    await lock_chain(conn)
    return await _append_locked(conn, prepared)


# --- SQLite files: the batch on a plain driver connection ------------------------------------------

_COLUMNS = (
    "seq, recorded, program_id, type, subtype, action, outcome, client_id, organization, address, detail, "
    "prev_hash, hash"
)
_INSERT_LOG = f"INSERT INTO audit_log ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"  # noqa: S608
_INSERT_INDEX = "INSERT INTO audit_entities (seq, kind, ref) VALUES (?, ?, ?)"
_TAIL = "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1"
_ANCHOR = "SELECT last_seq, hash FROM audit_anchors ORDER BY last_seq DESC LIMIT 1"


def _sqlite_time(value: datetime) -> str:
    """How SQLAlchemy stores a UTCDateTime in SQLite (naive UTC text), so its reads parse it back."""
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


class _SqliteAppender:
    """Appends batches on a plain driver connection: on the event loop itself when the write lock is
    free (a small WAL commit costs less than handing it to a thread and back, and a thread competing
    for the GIL slows the loop), in a worker thread that waits for the lock when another writer
    holds it. The connection never checkpoints on commit (that would stall the loop on fsync);
    :meth:`checkpoint` runs in a thread every CHECKPOINT_ROWS rows."""

    CHECKPOINT_ROWS = 5000

    def __init__(self, path: str) -> None:
        self.path = path
        self.connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        for pragma in (
            "PRAGMA foreign_keys=ON",
            "PRAGMA busy_timeout=0",
            "PRAGMA journal_mode=WAL",
            "PRAGMA synchronous=NORMAL",
            "PRAGMA wal_autocheckpoint=0",
        ):
            self.connection.execute(pragma)
        self.rows_since_checkpoint = 0
        self.checkpointing = False

    def try_append(self, prepared: Sequence[_Prepared]) -> bool:
        """On the loop: False, having done nothing, when another writer holds the lock."""
        try:
            self.connection.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as error:
            if getattr(error, "sqlite_errorcode", sqlite3.SQLITE_BUSY) == sqlite3.SQLITE_BUSY:
                return False
            raise
        self._append_in_transaction(prepared)
        return True

    def append_waiting(self, prepared: Sequence[_Prepared]) -> None:
        """In a worker thread: waits for the write lock (up to the busy timeout)."""
        self.connection.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        try:
            self.connection.execute("BEGIN IMMEDIATE")
            self._append_in_transaction(prepared)
        finally:
            self.connection.execute("PRAGMA busy_timeout=0")

    def _append_in_transaction(self, prepared: Sequence[_Prepared]) -> None:
        cursor = self.connection.cursor()
        try:
            row = cursor.execute(_TAIL).fetchone() or cursor.execute(_ANCHOR).fetchone()
            seq, prev = (int(row[0]), str(row[1])) if row else (0, GENESIS)
            rows: list[tuple[Any, ...]] = []
            index: list[tuple[int, str, str]] = []
            for item, number, before, digest in _chain(prepared, seq, prev):
                v = item.values
                rows.append(
                    (
                        number,
                        _sqlite_time(v["recorded"]),
                        v["program_id"],
                        v["type"],
                        v["subtype"],
                        v["action"],
                        v["outcome"],
                        v["client_id"],
                        v["organization"],
                        v["address"],
                        item.detail_json.decode(),
                        before,
                        digest,
                    )
                )
                index.extend((number, kind, ref) for kind, ref in item.entities)
            cursor.executemany(_INSERT_LOG, rows)
            if index:
                cursor.executemany(_INSERT_INDEX, index)
            cursor.execute("COMMIT")
            self.rows_since_checkpoint += len(rows) + len(index)
        except BaseException:
            if self.connection.in_transaction:
                cursor.execute("ROLLBACK")
            raise
        finally:
            cursor.close()

    def checkpoint_due(self) -> bool:
        if self.checkpointing or self.rows_since_checkpoint < self.CHECKPOINT_ROWS:
            return False
        self.checkpointing, self.rows_since_checkpoint = True, 0
        return True

    def checkpoint(self) -> None:
        """PASSIVE: copies what it can without waiting for (or blocking) readers and writers."""
        try:
            connection = sqlite3.connect(self.path, isolation_level=None)
            try:
                connection.execute("PRAGMA wal_checkpoint(PASSIVE)")
            finally:
                connection.close()
        except sqlite3.Error as error:
            log.warning("audit_checkpoint_failed", error_type=type(error).__name__)
        finally:
            self.checkpointing = False


_appenders: weakref.WeakKeyDictionary[Database, _SqliteAppender] = weakref.WeakKeyDictionary()


def _sqlite_appender(database: Database) -> _SqliteAppender | None:
    """For a SQLite file (the gateway's embedded database); None elsewhere (PostgreSQL, in-memory)."""
    if database.loop_reader is None or not database.url.database:
        return None
    found = _appenders.get(database)
    if found is None:
        found = _appenders[database] = _SqliteAppender(database.url.database)
        weakref.finalize(database, found.connection.close)
    return found


# --- PostgreSQL: the batch in one statement on the asyncpg connection -------------------------------

_PG_APPEND = (
    "SELECT peerlink_audit_append($1::bytea[], $2::bytea[], $3::bytea[], $4::timestamptz[], $5::varchar[], "
    "$6::varchar[], $7::varchar[], $8::varchar[], $9::varchar[], $10::varchar[], $11::varchar[], $12::varchar[], "
    "$13::text[], $14::varchar[], $15::varchar[], $16::int[])"
)


async def _append_postgres(driver: Any, prepared: Sequence[_Prepared]) -> None:
    """The whole batch in one statement, one round trip: peerlink_audit_append (migration 0005) takes
    the chain lock, reads the tail, joins each record's canonical parts with its seq and prev_hash,
    hashes them (the same SHA-256 over the same bytes as service.audit.chain.canonical) and inserts
    the records and their index rows; autocommit, so the lock is held for that statement only. On a
    loaded event loop every round trip waits a turn of the loop: one instead of six keeps the batch short."""
    columns: list[list[Any]] = [[] for _ in range(16)]
    for position, item in enumerate(prepared, start=1):
        v = item.values
        values = (
            *item.parts,
            v["recorded"],
            v["program_id"],
            v["type"],
            v["subtype"],
            v["action"],
            v["outcome"],
            v["client_id"],
            v["organization"],
            v["address"],
            item.detail_json.decode(),
        )
        for column, value in zip(columns, values, strict=False):
            column.append(value)
        for kind, ref in item.entities:
            columns[13].append(kind)
            columns[14].append(ref)
            columns[15].append(position)
    await driver.fetchval(_PG_APPEND, *columns)


# --- group commit ------------------------------------------------------------------------------------


class _Batcher:
    """Group commit of the records written with a Database, per database and event loop."""

    def __init__(self, database: Database, loop: asyncio.AbstractEventLoop) -> None:
        self.database = database
        self.loop = loop
        self.pending: list[tuple[_Prepared, asyncio.Future[None]]] = []
        self.task: asyncio.Task[None] | None = None

    async def submit(self, prepared: Sequence[_Prepared]) -> None:
        futures: list[asyncio.Future[None]] = []
        for item in prepared:
            futures.append(self.loop.create_future())
            self.pending.append((item, futures[-1]))
        if self.task is None or self.task.done():
            self.task = self.loop.create_task(self._drain())
        for future in futures:
            await future

    def _take(self) -> list[tuple[_Prepared, asyncio.Future[None]]]:
        batch, self.pending = self.pending[:MAX_BATCH], self.pending[MAX_BATCH:]
        return batch

    def _fail(self, batch: list[tuple[_Prepared, asyncio.Future[None]]], error: BaseException) -> None:
        if not batch:
            return
        log.error("audit_write_failed", error_type=type(error).__name__, records=len(batch))
        for _, future in batch:
            if not future.done():
                future.set_exception(_unavailable(error))

    @staticmethod
    def _done(batch: list[tuple[_Prepared, asyncio.Future[None]]]) -> None:
        for _, future in batch:
            if not future.done():
                future.set_result(None)

    async def _drain(self) -> None:
        """Writes batches until nothing is pending. Every failure fails the requests of its batch
        (AuditUnavailable) and the next batch is tried afresh."""
        backend = self.database.url.get_backend_name()
        while self.pending:
            # a failed batch has its AuditUnavailable (and a log line); go on with what is pending
            with contextlib.suppress(Exception):
                if _sqlite_appender(self.database) is not None:
                    await self._drain_sqlite()
                elif backend == "postgresql":
                    await self._drain_postgres()
                else:
                    await self._drain_generic()

    async def _drain_sqlite(self) -> None:
        appender = _sqlite_appender(self.database)
        assert appender is not None
        while self.pending:
            await asyncio.sleep(0)  # one more turn of the loop: requests on their way join this batch
            batch = self._take()
            prepared = [p for p, _ in batch]
            try:
                if not appender.try_append(prepared):
                    await asyncio.to_thread(appender.append_waiting, prepared)
            except BaseException as error:
                self._fail(batch, error)
                raise
            self._done(batch)
            if appender.checkpoint_due():
                self.loop.run_in_executor(None, appender.checkpoint)

    async def _drain_postgres(self) -> None:
        """One pooled connection for as long as batches keep coming (checking one out costs a ping
        round trip, and every round trip waits a turn of a loaded event loop). The last batch is
        answered once the connection is back in the pool, so no task outlives the requests."""
        batch: list[tuple[_Prepared, asyncio.Future[None]]] = []
        committed: list[tuple[_Prepared, asyncio.Future[None]]] = []
        try:
            async with self.database.engine.connect() as conn:
                driver: Any = (await conn.get_raw_connection()).driver_connection
                while self.pending:
                    batch = self._take()
                    try:
                        await _append_postgres(driver, [p for p, _ in batch])
                    except BaseException:
                        if driver.is_closed():
                            await conn.invalidate()
                        raise
                    batch, committed = [], batch
                    if self.pending:
                        self._done(committed)
                        committed = []
        except BaseException as error:
            self._done(committed)  # written: a failure handing the connection back changes nothing
            self._fail(batch or ([] if committed else self._take()), error)
            raise
        self._done(committed)

    async def _drain_generic(self) -> None:
        """Any other database (SQLite in memory): through SQLAlchemy, a transaction per batch."""
        batch: list[tuple[_Prepared, asyncio.Future[None]]] = []
        try:
            async with self.database.transaction() as conn:
                await lock_chain(conn)
                batch = self._take()  # late: everything that arrived while the lock was awaited
                await _append_locked(conn, [p for p, _ in batch])
        except BaseException as error:
            self._fail(batch or self._take(), error)
            raise
        self._done(batch)


_batchers: weakref.WeakKeyDictionary[Database, _Batcher] = weakref.WeakKeyDictionary()


def _batcher(database: Database) -> _Batcher:
    loop = asyncio.get_running_loop()
    found = _batchers.get(database)
    if found is None or found.loop is not loop:
        found = _batchers[database] = _Batcher(database, loop)
    return found


def _unavailable(error: BaseException) -> AuditUnavailable:
    failure = AuditUnavailable("the audit log cannot be written; the request was not carried out")
    failure.__cause__ = error
    return failure


async def write(target: Database | AsyncConnection, record: AuditRecord) -> None:
    """In the caller's transaction when given a connection (call it last), else committed on its own
    (batched with concurrent writers) before this returns. Raises :class:`AuditUnavailable`."""
    await write_many(target, [record])


async def write_many(target: Database | AsyncConnection, records: Sequence[AuditRecord]) -> None:
    """Several records at once (a transaction Bundle's entries, say), in order."""
    if isinstance(target, AsyncConnection):
        try:
            await append(target, records)
        except SQLAlchemyError as error:
            raise _unavailable(error) from error
        return
    await _batcher(target).submit([prepare(r) for r in records])
