"""PostgreSQL: asyncpg connections of one event loop for keyed statements past SQLAlchemy (the hot
read by id, the audit's batches), pooled without SQLAlchemy's pool (a checkout and a return took
~30 µs of the gateway's CPU, asyncpg's own pool ~15 µs with its reset round trip turned off; a list
takes well under 1 µs).

The sessions plan their prepared statements once (``plan_cache_mode = force_generic_plan``):
migration 0016 makes every session of the database plan each execution for its values, which a
search needs, but a keyed statement's plan never depends on its values, and planning it was about a
fifth of PostgreSQL's CPU per read (the read's statement, and the audit function's statements).
Searches driven by one Patient, record or identifier run here too (``service.fhir.search.sql.driving``):
built so that one plan fits every value, they were planned at every execution for four times as long
as they ran.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

KEYED_SETTINGS = {"plan_cache_mode": "force_generic_plan"}
"""The session settings of these connections (see the module's docstring)."""


class DriverPool:
    """At most ``size`` asyncpg connections of one event loop; ``acquire`` waits for one when all
    are taken. A connection the server closed is known without a round trip (asyncpg sees the
    socket close while it idles): it is dropped at checkout and another taken or opened."""

    def __init__(self, connect: Callable[[], Awaitable[Any]], size: int) -> None:
        self._connect = connect
        self._size = size
        self._open = 0  # connections open or being opened, idle or taken
        self._idle: list[Any] = []
        self._waiters: deque[asyncio.Future[Any]] = deque()
        self.loop = asyncio.get_running_loop()

    async def acquire(self) -> Any:
        idle = self._idle
        while idle:
            connection = idle.pop()
            if not connection.is_closed():
                return connection
            self._open -= 1
        if self._open >= self._size:
            waiter = self.loop.create_future()
            self._waiters.append(waiter)
            try:
                connection = await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled():
                    self._hand_on(waiter.result())  # handed to us as we were cancelled: pass it on
                raise
            if connection is not None:  # None: a slot was freed (and kept) for us
                return connection
        else:
            self._open += 1
        try:
            return await self._connect()
        except BaseException:
            self._hand_on(None)  # the slot is free again
            raise

    def release(self, connection: Any, *, discard: bool = False) -> None:
        """Back to the pool; ``discard``: closed (a connection found broken after an error)."""
        if discard or connection.is_closed():
            if not connection.is_closed():
                connection.terminate()
            connection = None
        self._hand_on(connection)

    def _hand_on(self, connection: Any) -> None:
        """A returned connection (None: a freed slot) to the first waiter, else to the idle list."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(connection)  # a slot handed on stays counted in _open
                return
        if connection is None:
            self._open -= 1
        else:
            self._idle.append(connection)

    async def close(self) -> None:
        """Close the idle connections (on the pool's own loop; elsewhere they are terminated)."""
        if _running_loop() is not self.loop or self.loop.is_closed():
            self.terminate()
            return
        idle, self._idle = self._idle, []
        self._open -= len(idle)
        for connection in idle:
            try:
                await connection.close(timeout=2)
            except Exception:  # closing: a connection that fails to close is terminated
                connection.terminate()

    def terminate(self) -> None:
        """Drop the idle connections without a round trip (their event loop may be gone)."""
        idle, self._idle = self._idle, []
        self._open -= len(idle)
        for connection in idle:
            with contextlib.suppress(Exception):
                connection.terminate()


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
