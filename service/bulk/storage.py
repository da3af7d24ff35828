"""Where export files live: a local folder (``PEERLINK_EXPORT_DIR``), a sub-folder per job.

A file is written under a temporary name and renamed when complete, so a download never sees half a
file; a job that is restarted starts from an empty folder.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import BinaryIO

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9\-.]{0,99}\.ndjson$")
_JOB = re.compile(r"^[a-f0-9]{32}$")


class LocalStorage:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _folder(self, job_id: str) -> Path:
        if not _JOB.match(job_id):
            raise ValueError("not a job id")
        return self.root / job_id

    def path(self, job_id: str, name: str) -> Path | None:
        """The finished file, or None when there is no such file (or the name is not one of ours)."""
        if not _NAME.match(name) or not _JOB.match(job_id):
            return None
        found = self._folder(job_id) / name
        return found if found.is_file() else None

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

    def delete(self, job_id: str) -> None:
        shutil.rmtree(self._folder(job_id), ignore_errors=True)
