"""The loop that runs export jobs (in `peerlink serve` unless PEERLINK_EXPORT_IN_PROCESS=false, and in
`peerlink worker`): claim a job, run it, delete expired jobs and their files, rest when idle. Several
may run at once (replicas): a job is one worker's while its lease lasts; a worker that stops gives its
job back, one that dies loses it when the lease runs out, and the job starts over elsewhere."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from service.settings import Settings
from service.store import Database

from . import export, jobs
from .storage import LocalStorage, S3Storage, Storage

log = logging.getLogger("peerlink.bulk")
EXPIRY_CHECK_SECONDS = 60.0


_S3: dict[tuple[str, str, str | None], S3Storage] = {}


def storage_of(settings: Settings) -> Storage:
    """The configured backend: the S3 bucket when one is set (one client per bucket), else the folder."""
    if settings.export_s3_bucket is None:
        return LocalStorage(settings.export_dir)
    key = (settings.export_s3_bucket, settings.export_s3_prefix, settings.export_s3_endpoint_url)
    if key not in _S3:
        _S3[key] = S3Storage(
            settings.export_s3_bucket,
            prefix=settings.export_s3_prefix,
            endpoint_url=settings.export_s3_endpoint_url,
            region=settings.export_s3_region,
        )
    return _S3[key]


@dataclass
class ExportRunner:
    database: Database
    settings: Settings
    name: str = field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}")

    def __post_init__(self) -> None:
        self.storage = storage_of(self.settings)
        self.options = export.Settings(
            chunk=self.settings.export_chunk_rows,
            lease=timedelta(seconds=self.settings.export_lease_seconds),
            retention=timedelta(seconds=self.settings.export_retention_seconds),
        )
        self._expiry_checked = -float("inf")

    async def run(self, stop: asyncio.Event) -> None:
        try:
            while not stop.is_set():
                try:
                    busy = await self.run_once(stop)
                    if time.monotonic() - self._expiry_checked >= EXPIRY_CHECK_SECONDS:
                        await self.expire()
                except Exception:  # a database outage must not end the loop; it retries after a rest
                    log.exception("export cycle failed")
                    busy = False
                if not busy:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), self.settings.worker_idle_seconds)
        finally:
            with contextlib.suppress(Exception):
                async with self.database.transaction() as conn:
                    await jobs.release(conn, self.name)

    async def run_once(self, stop: asyncio.Event | None = None) -> bool:
        """Claim and run one job; False when there was none."""
        async with self.database.transaction() as conn:
            job = await jobs.claim(conn, self.name, datetime.now(UTC), self.options.lease)
        if job is None:
            return False
        try:
            await export.run(self.database, self.storage, job, self.name, self.options, stop)
        except Exception as error:
            log.exception("export failed", extra={"export": job.id})
            await asyncio.to_thread(self.storage.delete, job.id)
            async with self.database.transaction() as conn:
                await jobs.finish(
                    conn,
                    job.id,
                    jobs.FAILED,
                    datetime.now(UTC),
                    retention=self.options.retention,
                    worker=self.name,
                    error=f"the export failed ({type(error).__name__})",
                )
        return True

    async def drain(self) -> int:
        """Run every job that is due (tests, `peerlink worker --once`)."""
        done = 0
        while await self.run_once():
            done += 1
        return done

    async def expire(self) -> int:
        """Delete the jobs (and files) whose time has passed."""
        self._expiry_checked = time.monotonic()
        async with self.database.read() as conn:
            found = await jobs.expired(conn, datetime.now(UTC))
        for job_id in found:
            await asyncio.to_thread(self.storage.delete, job_id)
            async with self.database.transaction() as conn:
                await jobs.remove(conn, job_id)
        return len(found)
