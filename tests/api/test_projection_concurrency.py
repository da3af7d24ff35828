"""Two transactions changing the same FHIR resource at once (two sessions of one referral recorded
together both rewrite its Task): the second waits for the first and stores the next version; neither
is refused."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from sqlalchemy import select

from service.fhir.projection import store
from service.store.tables import fhir_versions

TASK = {"resourceType": "Task", "id": "task-1", "status": "in-progress", "intent": "order"}


async def test_concurrent_changes_of_one_resource_store_consecutive_versions(database, program):
    now = datetime.now(UTC)
    async with database.transaction() as conn:
        assert await store(conn, program.id, dict(TASK), "referral", "r-1", now)
    first_holds = asyncio.Event()
    release = asyncio.Event()

    async def first() -> None:
        async with database.transaction() as conn:
            assert await store(conn, program.id, {**TASK, "status": "completed"}, "referral", "r-1", now)
            first_holds.set()
            await release.wait()  # the second starts while this one holds its change uncommitted

    async def second() -> None:
        await first_holds.wait()
        async with database.transaction() as conn:
            assert await store(conn, program.id, {**TASK, "status": "on-hold"}, "referral", "r-1", now)

    one = asyncio.create_task(first())
    two = asyncio.create_task(second())
    await first_holds.wait()
    await asyncio.sleep(0.3)  # the second is waiting (PostgreSQL: for the row; SQLite: for the writer)
    release.set()
    await asyncio.wait_for(asyncio.gather(one, two), timeout=30)
    v = fhir_versions.c
    async with database.read() as conn:
        rows = (await conn.execute(select(v.version_id).where(v.resource_id == "task-1").order_by(v.pk))).all()
    assert [row.version_id for row in rows] == [1, 2, 3]
