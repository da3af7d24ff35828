"""The async engine and the unit of work (one transaction per business operation)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, cast

import asyncpg
import orjson
from sqlalchemy import Connection, Engine, create_engine, event, make_url, text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.util import greenlet_spawn

from .driver_pool import KEYED_SETTINGS, DriverPool

SQLITE_BUSY_TIMEOUT_MS = 10_000
READ_POOL_SIZE = 12
READ_POOL_OVERFLOW = 0
"""PostgreSQL: the read-only pool (autocommit), beside the write pool of 40 (+20). No overflow: under
load, connections opened past the pool are closed on their return and opened again for the next
read (profiled: a tenth of a loaded gateway's time); a read waits for a pooled connection instead."""
DRIVER_POOL_SIZE = 12
"""PostgreSQL: the driver pool of keyed reads (``driver``). With the read pool, 24 connections, as many
as the read pool alone had when it served the keyed reads too (a gateway's first requests fill both
pools: its program's lookup, then its reads)."""
AUDIT_POOL_SIZE = 2


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def normalize_url(url: str) -> URL:
    """Accept plain ``sqlite:///`` and ``postgresql://`` URLs and pick the async driver for them."""
    parsed = make_url(url)
    if parsed.drivername in ("sqlite", "sqlite+pysqlite"):
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    elif parsed.drivername in ("postgresql", "postgres", "postgresql+psycopg2", "postgresql+psycopg"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    return parsed


def _configure_sqlite(engine: AsyncEngine, *, writer: bool) -> None:
    """SQLite: foreign keys on, WAL, and writers that wait for each other instead of failing.
    Readers run in autocommit: with WAL each statement sees the last commit and never waits."""

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode=WAL")
        # WAL with NORMAL never corrupts; a power cut (not a crash) may lose the last commits.
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        # IMMEDIATE takes the write lock up front: two writers queue instead of deadlocking.
        if writer:
            connection.exec_driver_sql("BEGIN IMMEDIATE")


def _configure_sqlite_sync(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # autocommit: each read sees the last commit
        dbapi_connection.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        dbapi_connection.execute("PRAGMA query_only=ON")


class _LoopReadConnection:
    """A synchronous SQLite connection behind the one AsyncConnection method reads use."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    async def execute(self, statement: Any, parameters: Any = None) -> Any:
        return self._connection.execute(statement, parameters)

    @property
    def dialect(self) -> Any:
        return self._connection.dialect

    def driver_connection(self) -> Any:
        """The sqlite3 connection (kept statements run on it: service.store.kept)."""
        return self._connection.connection.driver_connection


class _LazyReadConnection:
    """PostgreSQL: a connection of the read pool taken at the first statement that needs one, behind
    the AsyncConnection methods reads use (a search whose statements all run on the driver's sessions
    never takes one: without the checkout and the rollback round trip of its return, the gateway's CPU
    per search at a million resources went from 490-900 to 330-650 µs, measured)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._connection: AsyncConnection | None = None

    @property
    def dialect(self) -> Any:
        return self._engine.dialect

    async def _taken(self) -> AsyncConnection:
        if self._connection is None:
            self._connection = await self._engine.connect().start()
        return self._connection

    async def execute(self, statement: Any, parameters: Any = None) -> Any:
        return await (await self._taken()).execute(statement, parameters)

    async def get_raw_connection(self) -> Any:
        return await (await self._taken()).get_raw_connection()

    async def close(self) -> None:
        if self._connection is not None:
            connection, self._connection = self._connection, None
            await connection.close()


class Database:
    loop_reader: Engine | None = None
    audit_engine: AsyncEngine | None = None
    """PostgreSQL: names the audit's own driver pool (``driver(database.audit_engine)``)."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = normalize_url(url)
        self._driver_pools: dict[tuple[asyncio.AbstractEventLoop, bool], DriverPool] = {}
        if self.url.get_backend_name() == "sqlite" and self.url.database not in (None, "", ":memory:"):
            Path(self.url.database).parent.mkdir(parents=True, exist_ok=True)
        common: dict[str, Any] = {"echo": echo, "json_serializer": _json_dumps}
        if self.is_sqlite:  # a local file never drops a connection: no pre-ping round trip
            self.engine = create_async_engine(self.url, **common)
            _configure_sqlite(self.engine, writer=True)
            # WAL readers run side by side; the pool is sized for a loaded gateway.
            self.read_engine = create_async_engine(self.url, pool_reset_on_return=None, **common)
            _configure_sqlite(self.read_engine, writer=False)
            if self.url.database not in (None, "", ":memory:"):
                self.loop_reader = create_engine(
                    self.url.set(drivername="sqlite+pysqlite"),
                    pool_size=8,
                    pool_reset_on_return=None,
                    connect_args={"check_same_thread": False},
                    **common,
                )
                _configure_sqlite_sync(self.loop_reader)
        else:
            self.engine = create_async_engine(self.url, pool_pre_ping=True, pool_size=40, max_overflow=20, **common)
            # Reads: autocommit, no ping, no reset. A read was BEGIN, ping, the statement, ROLLBACK: four
            # round trips, each waiting a turn of a loaded event loop; now it is the statement alone. At
            # READ COMMITTED each statement sees its own snapshot in a transaction too, so nothing a
            # read sees changes. A connection the server dropped fails the one read that finds it, and
            # SQLAlchemy then replaces every connection of the pool (a disconnect invalidates the pool).
            self.read_engine = create_async_engine(
                self.url,
                isolation_level="AUTOCOMMIT",
                pool_reset_on_return=None,
                pool_size=READ_POOL_SIZE,
                max_overflow=READ_POOL_OVERFLOW,
                **common,
            )
            # The audit's group commit (service.audit.batching): one connection per event loop, held
            # while batches keep coming, from a driver pool of its own (``driver(audit_engine)``).
            self.audit_engine = create_async_engine(
                self.url, isolation_level="AUTOCOMMIT", pool_reset_on_return=None, pool_size=2, **common
            )

    @property
    def is_sqlite(self) -> bool:
        return self.url.get_backend_name() == "sqlite"

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.begin() as connection:
            yield connection

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A read-only unit of work. On a SQLite file it runs on the event loop itself: a WAL reader
        never waits for a writer, and a small indexed read costs far less than the async driver's
        hand-offs to its thread. Reads use ``execute`` only."""
        if self.loop_reader is not None:
            with self.loop_reader.connect() as connection:
                yield cast(AsyncConnection, _LoopReadConnection(connection))
            return
        async with self.read_engine.connect() as connection:
            yield connection

    @asynccontextmanager
    async def read_lazily(self) -> AsyncIterator[AsyncConnection]:
        """``read``, but on PostgreSQL the connection is taken only when a statement needs it (see
        :class:`_LazyReadConnection`; statements run on ``driver`` need none)."""
        if self.is_sqlite:
            async with self.read() as connection:
                yield connection
            return
        lazy = _LazyReadConnection(self.read_engine)
        try:
            yield cast(AsyncConnection, lazy)
        finally:
            await lazy.close()

    @asynccontextmanager
    async def driver(self, engine: AsyncEngine | None = None) -> AsyncIterator[Any]:
        """PostgreSQL: an asyncpg connection (autocommit) for keyed statements past SQLAlchemy, from
        the driver pool of the running event loop (service.store.driver_pool: no ping, no reset; a
        connection the server has closed is dropped at checkout, which is what a pre-ping would have
        done). Its session plans each prepared statement once, for any values: statements whose plan
        depends on their values (a search) go through ``read``. A connection closed, or left in an
        unknown state (an error other than the server's answer, a cancellation), is closed and
        dropped; the error is raised. ``engine``: ``audit_engine`` for the audit's own pool (a batch
        never waits for a read connection held by a request that waits for the batch); another
        engine: a pooled connection of that engine."""
        if engine is not None and engine is not self.audit_engine:
            async with self._engine_driver(engine) as connection:
                yield connection
            return
        pool = self._driver_pool(audit=engine is not None)
        connection = await pool.acquire()
        try:
            yield connection
        except asyncpg.PostgresError:
            pool.release(connection)  # the server's answer: the session is as it was
            raise
        except BaseException:
            pool.release(connection, discard=True)
            raise
        pool.release(connection)

    def _driver_pool(self, *, audit: bool) -> DriverPool:
        loop = asyncio.get_running_loop()
        pool = self._driver_pools.get((loop, audit))
        if pool is None:
            for key in [key for key in self._driver_pools if key[0].is_closed()]:
                self._driver_pools.pop(key).terminate()  # a finished event loop's
            _, options = self.read_engine.dialect.create_connect_args(self.url)

            async def connect() -> Any:
                return await asyncpg.connect(**options, server_settings=KEYED_SETTINGS)

            size = AUDIT_POOL_SIZE if audit else DRIVER_POOL_SIZE
            pool = self._driver_pools[(loop, audit)] = DriverPool(connect, size)
        return pool

    @asynccontextmanager
    async def _engine_driver(self, engine: AsyncEngine) -> AsyncIterator[Any]:
        """The asyncpg connection of a pooled connection of an autocommit engine."""
        fairy = await engine.raw_connection()
        for _ in range(READ_POOL_SIZE):
            if not cast(Any, fairy.driver_connection).is_closed():
                break
            await greenlet_spawn(fairy.invalidate)  # closes it and hands the record back: no close()
            fairy = await engine.raw_connection()  # the record connects afresh when its turn comes
        connection: Any = fairy.driver_connection
        try:
            yield connection
        except BaseException:
            if connection.is_closed():
                await greenlet_spawn(fairy.invalidate)
                raise
            await greenlet_spawn(fairy.close)
            raise
        await greenlet_spawn(fairy.close)  # back to the pool (autocommit: nothing to reset)

    async def fetch_row(self, sql: str, *arguments: Any) -> Any:
        """PostgreSQL: one keyed statement (``$1``-style placeholders), its row or None. For the hot
        keyed read: no statement compilation, no result processing, no per-connection lock of the
        SQLAlchemy adapter; the text is constant, so asyncpg's own statement cache prepares it once
        per connection, and the session plans it once (``driver``)."""
        async with self.driver() as connection:
            return await connection.fetchrow(sql, *arguments)

    async def ping(self) -> None:
        async with self.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        pools, self._driver_pools = list(self._driver_pools.values()), {}
        for pool in pools:
            await pool.close()
        if self.loop_reader is not None:
            self.loop_reader.dispose()
        await self.engine.dispose()
        if self.read_engine is not self.engine:
            await self.read_engine.dispose()
        if self.audit_engine is not None:
            await self.audit_engine.dispose()
