"""The audit benchmark's parts keep working (`make bench` runs the whole; nothing here is timed)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from service.audit import write
from tests.audit.conftest import record
from tests.bench import bench_audit


def test_overhead_is_the_share_of_throughput_lost():
    assert bench_audit.overhead({"rps": 850.0}, {"rps": 1000.0}) == 0.15000000000000002
    assert bench_audit.overhead({"rps": 1100.0}, {"rps": 1000.0}) < 0
    assert bench_audit.overhead({"rps": 5.0}, {"rps": 0.0}) == 0.0
    assert bench_audit.best([{"rps": 1.0}, {"rps": 3.0}, {"rps": 2.0}]) == {"rps": 3.0}


async def test_audit_state_counts_records_and_verifies(tmp_path):
    import asyncio

    from service.store import Database
    from service.store.migrate import upgrade

    path = tmp_path / "bench.db"
    url = f"sqlite+aiosqlite:///{path}"
    await asyncio.to_thread(upgrade, url)
    database = Database(url)
    try:
        for i in range(3):
            await write(database, record(recorded=datetime.now(UTC) - timedelta(seconds=3 - i)))
    finally:
        await database.dispose()
    count, summary = await asyncio.to_thread(bench_audit.audit_state, url)
    assert count == 3
    assert summary.startswith("audit chain OK: 3 live records")
