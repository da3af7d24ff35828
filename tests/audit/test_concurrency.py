"""Eight writers at once — each with its own engine and connections, as eight gateway processes or
replicas would be — keep one valid chain with contiguous seqs (PostgreSQL: the advisory lock;
SQLite: BEGIN IMMEDIATE)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from sqlalchemy import insert

from service.audit import write, write_many
from service.audit.verify import verify
from service.store import Database
from service.store.tables import review_flags
from tests.audit.conftest import index_rows, record, rows

WRITERS = 8
PER_WRITER = 30


async def _writer(url: str, n: int, program_id: str) -> None:
    database = Database(url)
    try:
        for i in range(PER_WRITER):
            mode = i % 3
            if mode == 0:  # a read: batched, committed on its own
                await write(database, record(writer=n, i=i, patients=[f"p{n}"]))
            elif mode == 1:  # a change: in the caller's transaction, the audit record last
                async with database.transaction() as conn:
                    await conn.execute(
                        insert(review_flags).values(
                            program_id=program_id,
                            kind="participant",
                            record_id=f"{n}-{i}",
                            reason="x",
                            created_at=datetime.now(UTC),
                        )
                    )
                    await write(conn, record("create", action="C", writer=n, i=i, entities=[f"Task/{n}-{i}"]))
            else:  # several records at once, from concurrent requests of one process
                await asyncio.gather(
                    write(database, record(writer=n, i=i, part=0)),
                    write_many(database, [record(writer=n, i=i, part=1)]),
                )
    finally:
        await database.dispose()


async def test_eight_concurrent_writers_keep_one_valid_chain(database, program):
    url = database.url.render_as_string(hide_password=False)
    await asyncio.gather(*(_writer(url, n, program.id) for n in range(WRITERS)))
    found = await rows(database)
    expected = WRITERS * (PER_WRITER + PER_WRITER // 3)
    assert [r["seq"] for r in found] == list(range(1, expected + 1))
    assert len({(r["detail"]["writer"], r["detail"]["i"], r["detail"].get("part")) for r in found}) == expected
    report = await verify(database)
    assert report.ok, report.summary()
    assert report.live_checked == expected
    assert len(await index_rows(database)) == WRITERS * PER_WRITER * 2 // 3
