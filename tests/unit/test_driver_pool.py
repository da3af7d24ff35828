"""The driver pool (service.store.driver_pool): at most its size open, waiters served in turn, a closed
or discarded connection replaced, a cancelled waiter's connection passed on."""

import asyncio

import pytest

from service.store.driver_pool import DriverPool


class FakeConnection:
    def __init__(self, number: int) -> None:
        self.number = number
        self.closed = False

    def is_closed(self) -> bool:
        return self.closed

    def terminate(self) -> None:
        self.closed = True

    async def close(self, **_: object) -> None:
        self.closed = True


def _pool(size: int) -> tuple[DriverPool, list[FakeConnection]]:
    opened: list[FakeConnection] = []

    async def connect() -> FakeConnection:
        await asyncio.sleep(0)
        opened.append(FakeConnection(len(opened)))
        return opened[-1]

    return DriverPool(connect, size), opened


async def test_reuses_and_waits_when_all_are_taken():
    pool, opened = _pool(2)
    a, b = await pool.acquire(), await pool.acquire()
    waiting = asyncio.ensure_future(pool.acquire())
    await asyncio.sleep(0.01)
    assert not waiting.done() and len(opened) == 2
    pool.release(a)
    assert await waiting is a
    pool.release(b)
    assert await pool.acquire() is b
    assert len(opened) == 2


async def test_a_closed_or_discarded_connection_is_replaced():
    pool, opened = _pool(1)
    a = await pool.acquire()
    pool.release(a)
    a.closed = True  # the server closed it while it idled
    b = await pool.acquire()
    assert b is not a and len(opened) == 2
    waiting = asyncio.ensure_future(pool.acquire())
    await asyncio.sleep(0.01)
    pool.release(b, discard=True)
    assert b.closed
    c = await waiting  # the freed place: the waiter opens a new one
    assert c is opened[2] and not c.closed


async def test_a_cancelled_waiter_passes_its_connection_on():
    pool, opened = _pool(1)
    a = await pool.acquire()
    first = asyncio.ensure_future(pool.acquire())
    second = asyncio.ensure_future(pool.acquire())
    await asyncio.sleep(0.01)
    pool.release(a)  # handed to the first waiter...
    first.cancel()  # ...which is cancelled before it runs
    with pytest.raises(asyncio.CancelledError):
        await first
    assert await second is a
    assert len(opened) == 1


async def test_a_failed_connect_frees_its_place():
    attempts = []

    async def connect() -> FakeConnection:
        attempts.append(1)
        if len(attempts) == 1:
            raise OSError("refused")
        return FakeConnection(len(attempts))

    pool = DriverPool(connect, 1)
    with pytest.raises(OSError):
        await pool.acquire()
    connection = await pool.acquire()
    assert not connection.is_closed()
    pool.release(connection)
    await pool.close()
    assert connection.is_closed()
