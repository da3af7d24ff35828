"""Where export files live: a local folder (``PEERLINK_EXPORT_DIR``, a sub-folder per job) or, when
``PEERLINK_EXPORT_S3_BUCKET`` is set, an S3-compatible bucket (objects ``PREFIX/JOB/FILE``), which
every gateway replica reads: any replica answers a status poll or a download.

A file is written under a temporary name (locally; for S3 a local temporary file, uploaded when
complete), so a download never sees half a file; a job that is restarted starts from an empty folder.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, Protocol

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9\-.]{0,99}\.ndjson$")
_JOB = re.compile(r"^[a-f0-9]{32}$")
READ_CHUNK = 1 << 20


def valid(job_id: str, name: str) -> bool:
    return bool(_JOB.match(job_id) and _NAME.match(name))


class Storage(Protocol):
    def reset(self, job_id: str) -> None: ...
    def open(self, job_id: str, name: str) -> BinaryIO: ...
    def finish(self, job_id: str, name: str) -> None: ...
    def discard(self, job_id: str, name: str) -> None: ...
    def delete(self, job_id: str) -> None: ...
    def exists(self, job_id: str, name: str) -> bool: ...
    def chunks(self, job_id: str, name: str) -> Iterator[bytes]: ...


class LocalStorage:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _folder(self, job_id: str) -> Path:
        if not _JOB.match(job_id):
            raise ValueError("not a job id")
        return self.root / job_id

    def path(self, job_id: str, name: str) -> Path | None:
        """The finished file, or None when there is no such file (or the name is not one of ours)."""
        if not valid(job_id, name):
            return None
        found = self._folder(job_id) / name
        return found if found.is_file() else None

    def exists(self, job_id: str, name: str) -> bool:
        return self.path(job_id, name) is not None

    def chunks(self, job_id: str, name: str) -> Iterator[bytes]:
        path = self.path(job_id, name)
        if path is None:
            return
        with path.open("rb") as source:
            while chunk := source.read(READ_CHUNK):
                yield chunk

    def reset(self, job_id: str) -> None:
        """An empty folder for the job (what an interrupted run left is removed)."""
        folder = self._folder(job_id)
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True, exist_ok=True)

    def open(self, job_id: str, name: str) -> BinaryIO:
        if not _NAME.match(name):
            raise ValueError("not an export file name")
        return (self._folder(job_id) / f"{name}.part").open("wb")

    def finish(self, job_id: str, name: str) -> None:
        folder = self._folder(job_id)
        (folder / f"{name}.part").replace(folder / name)

    def discard(self, job_id: str, name: str) -> None:
        (self._folder(job_id) / f"{name}.part").unlink(missing_ok=True)

    def delete(self, job_id: str) -> None:
        shutil.rmtree(self._folder(job_id), ignore_errors=True)


class S3Storage:
    """Objects in an S3-compatible bucket (credentials: the usual AWS_* environment variables)."""

    def __init__(self, bucket: str, *, prefix: str = "exports", endpoint_url: str | None = None, region: str) -> None:
        import boto3  # type: ignore[import-untyped]  # only deployments that use S3 install it

        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.client: Any = boto3.client("s3", endpoint_url=endpoint_url, region_name=region)
        self.spool = Path(tempfile.mkdtemp(prefix="peerlink-export-"))

    def _key(self, job_id: str, name: str = "") -> str:
        if not _JOB.match(job_id):
            raise ValueError("not a job id")
        return f"{self.prefix}/{job_id}/{name}" if self.prefix else f"{job_id}/{name}"

    def _local(self, job_id: str, name: str) -> Path:
        return self.spool / f"{job_id}-{name}.part"

    def reset(self, job_id: str) -> None:
        self.delete(job_id)

    def open(self, job_id: str, name: str) -> BinaryIO:
        if not _NAME.match(name):
            raise ValueError("not an export file name")
        return self._local(job_id, name).open("wb")

    def finish(self, job_id: str, name: str) -> None:
        local = self._local(job_id, name)
        try:
            self.client.upload_file(str(local), self.bucket, self._key(job_id, name))  # multipart when large
        finally:
            local.unlink(missing_ok=True)

    def discard(self, job_id: str, name: str) -> None:
        self._local(job_id, name).unlink(missing_ok=True)

    def delete(self, job_id: str) -> None:
        for local in self.spool.glob(f"{job_id}-*.part"):
            local.unlink(missing_ok=True)
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self._key(job_id))
        for page in pages:
            keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
            if keys:
                self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": keys})

    def exists(self, job_id: str, name: str) -> bool:
        if not valid(job_id, name):
            return False
        from botocore.exceptions import ClientError  # type: ignore[import-untyped]

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(job_id, name))
        except ClientError:
            return False
        return True

    def chunks(self, job_id: str, name: str) -> Iterator[bytes]:
        body = self.client.get_object(Bucket=self.bucket, Key=self._key(job_id, name))["Body"]
        try:
            yield from body.iter_chunks(READ_CHUNK)
        finally:
            body.close()
