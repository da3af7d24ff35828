"""The durable job: a job whose worker died is claimed again once its lease ran out and starts over
(no line twice), a running job cancelled stops and leaves no file, a stopping worker gives its job
back, a job interrupted too often fails, and finished jobs are deleted with their files once their
time has passed."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy import update

from service.bulk import export, jobs
from service.bulk.runner import ExportRunner
from service.store.tables import bulk_exports
from tests.bulk.support import files, finished, kick_off


async def _claim(database, worker: str, lease: timedelta) -> jobs.Job:
    async with database.transaction() as conn:
        job = await jobs.claim(conn, worker, datetime.now(UTC), lease)
    assert job is not None
    return job


async def test_a_job_whose_worker_died_starts_over_once_its_lease_ran_out(http, admin, database, settings, runner):
    status = await kick_off(http, admin, _type="Patient,Encounter")
    job = await _claim(database, "dead-worker", timedelta(seconds=60))
    # the dead worker had written part of a file
    folder = settings.export_dir / job.id
    folder.mkdir(parents=True)
    (folder / "Patient.ndjson.part").write_bytes(b'{"resourceType": "Patient", "id": "half')
    running = await http.get(status, headers=admin)
    assert running.status_code == 202 and running.headers["x-progress"].startswith("running")
    assert await runner.run_once() is False  # the lease holds: nobody else takes it
    async with database.transaction() as conn:
        await conn.execute(update(bulk_exports).values(claimed_until=datetime.now(UTC) - timedelta(seconds=1)))
    manifest = await finished(http, admin, status, runner)
    exported = await files(http, admin, manifest)
    assert set(exported) == {"Patient", "Encounter"}
    assert len({r["id"] for r in exported["Patient"]}) == len(exported["Patient"]) == 12
    assert not (folder / "Patient.ndjson.part").exists()


async def test_a_running_job_cancelled_stops_and_leaves_nothing(http, admin, database, settings):
    status = await kick_off(http, admin)
    job = await _claim(database, "worker-1", timedelta(seconds=60))
    assert (await http.delete(status, headers=admin)).status_code == 202
    assert (await http.get(status, headers=admin)).status_code == 404
    options = export.Settings(chunk=10, lease=timedelta(seconds=60), retention=timedelta(hours=1))
    assert await export.run(database, ExportRunner(database, settings).storage, job, "worker-1", options) is False
    assert not (settings.export_dir / job.id).exists()


async def test_a_stopping_worker_gives_its_job_back(http, admin, database, settings, runner):
    status = await kick_off(http, admin)
    job = await _claim(database, "stopping", timedelta(seconds=60))
    stop = asyncio.Event()
    stop.set()
    options = export.Settings(chunk=10, lease=timedelta(seconds=60), retention=timedelta(hours=1))
    assert await export.run(database, runner.storage, job, "stopping", options, stop) is False
    waiting = await http.get(status, headers=admin)
    assert waiting.status_code == 202 and waiting.headers["x-progress"] == "queued"
    assert (await finished(http, admin, status, runner))["output"]


async def test_a_job_interrupted_too_often_fails(http, admin, database, runner):
    status = await kick_off(http, admin, _type="Patient")
    async with database.transaction() as conn:
        await conn.execute(update(bulk_exports).values(attempts=jobs.ATTEMPTS))
    assert await runner.run_once() is False
    failed = await http.get(status, headers=admin)
    assert failed.status_code == 500 and failed.json()["resourceType"] == "OperationOutcome"
    assert "interrupted" in failed.json()["issue"][0]["diagnostics"]


async def test_finished_jobs_expire_with_their_files(http, admin, database, settings, runner):
    status = await kick_off(http, admin, _type="Patient")
    manifest = await finished(http, admin, status, runner)
    job_id = status.rsplit("/", 1)[1]
    assert (settings.export_dir / job_id / "Patient.ndjson").is_file()
    assert await runner.expire() == 0  # not yet
    async with database.transaction() as conn:
        await conn.execute(update(bulk_exports).values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    assert await runner.expire() == 1
    assert not (settings.export_dir / job_id).exists()
    assert (await http.get(status, headers=admin)).status_code == 404
    assert (await http.get(manifest["output"][0]["url"], headers=admin)).status_code == 404
