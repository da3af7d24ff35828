"""Audit batches on a SQLite file: on a plain driver connection, on the event loop when the write lock
is free (a worker thread waits for it otherwise), chained by the same rule as service.audit.append."""

from __future__ import annotations

import sqlite3
import weakref
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import structlog

from service.store import Database
from service.store.database import SQLITE_BUSY_TIMEOUT_MS

from .chain import GENESIS
from .record import Prepared, chain_hashes

log = structlog.get_logger("peerlink.audit")

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


class SqliteAppender:
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

    def try_append(self, prepared: Sequence[Prepared]) -> bool:
        """On the loop: False, having done nothing, when another writer holds the lock."""
        try:
            self.connection.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as error:
            if getattr(error, "sqlite_errorcode", sqlite3.SQLITE_BUSY) == sqlite3.SQLITE_BUSY:
                return False
            raise
        self._append_in_transaction(prepared)
        return True

    def append_waiting(self, prepared: Sequence[Prepared]) -> None:
        """In a worker thread: waits for the write lock (up to the busy timeout)."""
        self.connection.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        try:
            self.connection.execute("BEGIN IMMEDIATE")
            self._append_in_transaction(prepared)
        finally:
            self.connection.execute("PRAGMA busy_timeout=0")

    def _append_in_transaction(self, prepared: Sequence[Prepared]) -> None:
        cursor = self.connection.cursor()
        try:
            row = cursor.execute(_TAIL).fetchone() or cursor.execute(_ANCHOR).fetchone()
            seq, prev = (int(row[0]), str(row[1])) if row else (0, GENESIS)
            rows: list[tuple[Any, ...]] = []
            index: list[tuple[int, str, str]] = []
            for item, number, before, digest in chain_hashes(prepared, seq, prev):
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


_appenders: weakref.WeakKeyDictionary[Database, SqliteAppender] = weakref.WeakKeyDictionary()


def sqlite_appender(database: Database) -> SqliteAppender | None:
    """For a SQLite file (the gateway's embedded database); None elsewhere (PostgreSQL, in-memory)."""
    if database.loop_reader is None or not database.url.database:
        return None
    found = _appenders.get(database)
    if found is None:
        found = _appenders[database] = SqliteAppender(database.url.database)
        weakref.finalize(database, found.connection.close)
    return found
