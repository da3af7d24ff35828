"""Group commit: the records written with a Database by concurrent requests are committed together
(one transaction, one commit, one chain-lock round for all the records that arrived while the
previous batch was being written), per database and event loop: on a SQLite file by
service.audit.sqlite_sink, on PostgreSQL by service.audit.postgres_sink, elsewhere (SQLite in memory)
through SQLAlchemy (service.audit.append)."""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import Sequence

import structlog

from service.store import Database

from .append import append_locked, lock_chain
from .postgres_sink import append_postgres
from .record import Prepared, unavailable
from .sqlite_sink import sqlite_appender

MAX_BATCH = 500
log = structlog.get_logger("peerlink.audit")


class Batcher:
    """Group commit of the records written with a Database, per database and event loop."""

    def __init__(self, database: Database, loop: asyncio.AbstractEventLoop) -> None:
        self.database = database
        self.loop = loop
        self.pending: list[tuple[Prepared, asyncio.Future[None]]] = []
        self.task: asyncio.Task[None] | None = None

    async def submit(self, prepared: Sequence[Prepared]) -> None:
        futures: list[asyncio.Future[None]] = []
        for item in prepared:
            futures.append(self.loop.create_future())
            self.pending.append((item, futures[-1]))
        if self.task is None or self.task.done():
            self.task = self.loop.create_task(self._drain())
        for future in futures:
            await future

    def _take(self) -> list[tuple[Prepared, asyncio.Future[None]]]:
        batch, self.pending = self.pending[:MAX_BATCH], self.pending[MAX_BATCH:]
        return batch

    def _fail(self, batch: list[tuple[Prepared, asyncio.Future[None]]], error: BaseException) -> None:
        if not batch:
            return
        log.error("audit_write_failed", error_type=type(error).__name__, records=len(batch))
        for _, future in batch:
            if not future.done():
                future.set_exception(unavailable(error))

    @staticmethod
    def _done(batch: list[tuple[Prepared, asyncio.Future[None]]]) -> None:
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
                if sqlite_appender(self.database) is not None:
                    await self._drain_sqlite()
                elif backend == "postgresql":
                    await self._drain_postgres()
                else:
                    await self._drain_generic()

    async def _drain_sqlite(self) -> None:
        appender = sqlite_appender(self.database)
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
        """One connection of the audit pool for as long as batches keep coming (no ping on checkout:
        a connection the server closed is known without one, Database.driver). The last batch is
        answered once the connection is back in the pool, so no task outlives the requests."""
        batch: list[tuple[Prepared, asyncio.Future[None]]] = []
        committed: list[tuple[Prepared, asyncio.Future[None]]] = []
        try:
            async with self.database.driver(self.database.audit_engine) as driver:
                while self.pending:
                    batch = self._take()
                    await append_postgres(driver, [p for p, _ in batch])
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
        batch: list[tuple[Prepared, asyncio.Future[None]]] = []
        try:
            async with self.database.transaction() as conn:
                await lock_chain(conn)
                batch = self._take()  # late: everything that arrived while the lock was awaited
                await append_locked(conn, [p for p, _ in batch])
        except BaseException as error:
            self._fail(batch or self._take(), error)
            raise
        self._done(batch)


_batchers: weakref.WeakKeyDictionary[Database, Batcher] = weakref.WeakKeyDictionary()


def batcher(database: Database) -> Batcher:
    """The database's batcher on the running event loop."""
    loop = asyncio.get_running_loop()
    found = _batchers.get(database)
    if found is None or found.loop is not loop:
        found = _batchers[database] = Batcher(database, loop)
    return found
