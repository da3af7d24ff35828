"""Bulk export throughput and memory against a floor measured in the same run.

    python -m tests.bench.bench_export [RESOURCES]

On a temporary SQLite database (migrated, the demo program seeded), RESOURCES (default 100,000)
resources are generated straight into the projection (half Patients, half Encounters about them,
copies of the demo's stored bytes with new ids). Then, in process:
- the floor: a bare read of the same rows (the same keyset chunks of ``fhir_resources.body``, bytes
  dropped as read);
- the export: a job of the program's own client for every type, run by the worker's loop (rows read
  in chunks, written to NDJSON files, lease renewed, the export audited).
It prints resources/s of both and the ratio export/floor (target: >= 20,000 resources/s), and the
peak memory (tracemalloc, in separate runs: tracing slows Python down) of an export of a quarter of
the resources and of all of them: flat means the second is not much above the first (target: <= 1.5x).
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, insert, select

TARGET_PER_SECOND = 20_000
FLAT_TARGET = 1.5
CHUNK = 2000


def generate(sync_url: str, count: int, prefix: str = "gen") -> int:
    """Add ``count`` resources to the demo program's projection (half Patients, half Encounters about
    them); returns how many rows of those two types the program has afterwards."""
    from service.store.tables import fhir_resources, programs

    engine = create_engine(sync_url)
    r = fhir_resources.c
    with engine.begin() as conn:
        program_id = conn.execute(select(programs.c.id).where(programs.c.code == "demo")).scalar_one()
        patient = conn.execute(select(r.resource_id, r.body).where(r.resource_type == "Patient").limit(1)).one()
        encounter = conn.execute(
            select(r.resource_id, r.body).where(r.resource_type == "Encounter", r.patient_id == patient.resource_id)
        ).first()
        assert encounter is not None
        now = datetime.now(UTC) - timedelta(seconds=1)
        rows = []
        for i in range(count):
            pid = f"{prefix}-patient-{i // 2}"
            if i % 2 == 0:
                rid, body, kind = (
                    pid,
                    bytes(patient.body).replace(patient.resource_id.encode(), pid.encode()),
                    "Patient",
                )
            else:
                rid = f"{prefix}-encounter-{i // 2}"
                body = (
                    bytes(encounter.body)
                    .replace(encounter.resource_id.encode(), rid.encode())
                    .replace(patient.resource_id.encode(), pid.encode())
                )
                kind = "Encounter"
            rows.append(
                {
                    "program_id": program_id,
                    "resource_type": kind,
                    "resource_id": rid,
                    "version_id": 1,
                    "last_updated": now,
                    "source_kind": "bench",
                    "source_id": rid,
                    "content_hash": "0" * 64,
                    "body": body,
                    "patient_id": pid,
                }
            )
            if len(rows) == 5000:
                conn.execute(insert(fhir_resources), rows)
                rows = []
        if rows:
            conn.execute(insert(fhir_resources), rows)
        total = conn.execute(select(r.pk).where(r.resource_type.in_(["Patient", "Encounter"]))).all()
    engine.dispose()
    return len(total)


async def _floor(url: str) -> int:
    from service.store import Database
    from service.store.tables import fhir_resources

    r = fhir_resources.c
    database = Database(url)
    read, last = 0, 0
    try:
        while True:
            async with database.read() as conn:
                rows = (await conn.execute(select(r.pk, r.body).where(r.pk > last).order_by(r.pk).limit(CHUNK))).all()
            if not rows:
                return read
            read += len(rows)
            last = rows[-1].pk
    finally:
        await database.dispose()


async def _export(url: str, folder: Path, types: list[str] | None = None) -> int:
    from service.bulk import jobs
    from service.bulk.params import ExportRequest
    from service.bulk.runner import ExportRunner
    from service.fhir.search_params import SEARCH_PARAMS
    from service.settings import Settings
    from service.store import Database
    from service.store.tables import programs

    database = Database(url)
    settings = Settings(database_url=url, export_dir=folder, export_chunk_rows=CHUNK)
    try:
        async with database.transaction() as conn:
            program_id = (await conn.execute(select(programs.c.id).where(programs.c.code == "demo"))).scalar_one()
            job_id = await jobs.create(
                conn,
                program_id=program_id,
                client_id="bench",
                organization=None,
                request_url="http://bench/fhir/$export",
                request=ExportRequest("system", types or list(SEARCH_PARAMS)),
                now=datetime.now(UTC),
                retention=timedelta(hours=1),
            )
        assert await ExportRunner(database, settings).run_once()
        async with database.read() as conn:
            job = await jobs.get(conn, job_id, "bench")
        assert job is not None and job.state == jobs.DONE, job
        lines = sum(1 for path in (folder / job_id).glob("*.ndjson") for _ in path.open("rb"))
        assert lines == job.progress
        return job.progress
    finally:
        await database.dispose()


def _timed(coroutine_factory: Callable[..., Coroutine[Any, Any, int]], *args: Any) -> tuple[int, float]:
    started = time.perf_counter()
    count = asyncio.run(coroutine_factory(*args))
    return count, time.perf_counter() - started


def _peak(coroutine_factory: Callable[..., Coroutine[Any, Any, int]], *args: Any) -> int:
    tracemalloc.start()
    try:
        asyncio.run(coroutine_factory(*args))
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def main(count: int = 100_000) -> float:
    """Prints the figures; returns the ratio export/floor."""
    from service.cli.seed import seed_demo
    from service.store import Database
    from service.store.migrate import upgrade

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.db"
        url = f"sqlite+aiosqlite:///{path}"
        upgrade(url)

        async def seed() -> None:
            database = Database(url)
            async with database.transaction() as conn:
                await seed_demo(conn)
            await database.dispose()

        asyncio.run(seed())
        generate(f"sqlite:///{path}", count // 4)
        quarter_peak = _peak(_export, url, Path(tmp) / "q", ["Patient", "Encounter"])
        generate(f"sqlite:///{path}", count - count // 4, "more")
        _timed(_floor, url)  # warm the file cache for both
        floor_rows, floor_seconds = _timed(_floor, url)
        exported, export_seconds = _timed(_export, url, Path(tmp) / "t")
        full_peak = _peak(_export, url, Path(tmp) / "m", ["Patient", "Encounter"])
    export_rate = exported / export_seconds
    floor_rate = floor_rows / floor_seconds
    ratio = export_rate / floor_rate
    flat = full_peak / quarter_peak
    print(f"bulk export of {exported} resources (every type, {count} generated)")
    print(f"  bare read (floor)  {floor_rate:>10.0f} resources/s")
    print(f"  export             {export_rate:>10.0f} resources/s (target >= {TARGET_PER_SECOND})")
    print(f"ratio export/floor = {ratio:.2f}")
    print(
        f"peak memory: {quarter_peak / 2**20:.1f} MiB exporting {count // 4} resources, "
        f"{full_peak / 2**20:.1f} MiB exporting {count}: {flat:.2f}x (flat: target <= {FLAT_TARGET})"
    )
    return ratio


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000)
