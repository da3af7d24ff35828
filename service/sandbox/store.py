"""The sandbox's in-memory FHIR store: every version of every resource, in creation order.

Writes stamp ``meta.versionId`` and ``meta.lastUpdated`` (millisecond precision, strictly increasing,
so a poller asking ``_lastUpdated=gt<last seen>`` never misses nor repeats a change). New ids come
from a seeded generator: the same sequence of requests gives the same ids. ``atomic()`` undoes every
write of a block that raises (transaction Bundles are all or nothing). Nothing here awaits, so a
block runs without another request interleaving.
"""

from __future__ import annotations

import copy
import random
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from service.domain.errors import NotFound

from .config import RESOURCE_TYPES
from .outcome import Gone

ONE_MS = timedelta(milliseconds=1)


def instant(value: datetime) -> str:
    """FHIR instant text of a UTC datetime, to the millisecond."""
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Version:
    resource_type: str
    id: str
    version_id: int
    last_updated: datetime
    resource: dict[str, Any] | None
    """None for the version a delete wrote."""

    @property
    def etag(self) -> str:
        return f'W/"{self.version_id}"'

    @property
    def reference(self) -> str:
        return f"{self.resource_type}/{self.id}"


@dataclass
class _Record:
    seq: int
    versions: list[Version] = field(default_factory=list)


class Store:
    def __init__(self, seed: int, clock: Callable[[], datetime] = utc_now) -> None:
        self._records: dict[str, dict[str, _Record]] = {t: {} for t in RESOURCE_TYPES}
        self._rng = random.Random(f"sandbox-ids-{seed}")  # noqa: S311 - reproducible, not secret
        self._clock = clock
        self._seq = 0
        self._last = datetime.min.replace(tzinfo=UTC)
        self._undo: list[Callable[[], object]] | None = None

    # --- reading ---------------------------------------------------------------------------------------
    def current(self, resource_type: str, resource_id: str) -> Version | None:
        """The newest version (a delete's included), or None when the id never existed."""
        record = self._records.get(resource_type, {}).get(resource_id)
        return record.versions[-1] if record is not None else None

    def read(self, resource_type: str, resource_id: str) -> Version:
        found = self.current(resource_type, resource_id)
        if found is None:
            raise NotFound(f"{resource_type}/{resource_id[:64]} is not known")
        if found.resource is None:
            raise Gone(f"{resource_type}/{resource_id[:64]} was deleted")
        return found

    def vread(self, resource_type: str, resource_id: str, version_id: int) -> Version:
        record = self._records.get(resource_type, {}).get(resource_id)
        if record is None or not 1 <= version_id <= len(record.versions):
            raise NotFound(f"{resource_type}/{resource_id[:64]} has no version {version_id}")
        found = record.versions[version_id - 1]
        if found.resource is None:
            raise Gone(f"version {version_id} of {resource_type}/{resource_id[:64]} is a deletion")
        return found

    def live(self, resource_type: str) -> list[Version]:
        """Current versions of the resources not deleted, in creation order."""
        records = sorted(self._records[resource_type].values(), key=lambda r: r.seq)
        return [r.versions[-1] for r in records if r.versions[-1].resource is not None]

    def exists(self, resource_type: str, resource_id: str) -> bool:
        found = self.current(resource_type, resource_id)
        return found is not None and found.resource is not None

    def counts(self) -> dict[str, int]:
        return {t: len(self.live(t)) for t in RESOURCE_TYPES}

    # --- writing ---------------------------------------------------------------------------------------
    def new_id(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def _tick(self, at: datetime | None) -> datetime:
        now = (at or self._clock()).astimezone(UTC)
        now = now.replace(microsecond=now.microsecond - now.microsecond % 1000)
        if at is None and now <= self._last:
            now = self._last + ONE_MS
        self._last = max(self._last, now)
        return now

    def _append(
        self, resource_type: str, resource_id: str, body: dict[str, Any] | None, at: datetime | None
    ) -> Version:
        record = self._records[resource_type].get(resource_id)
        if record is None:
            self._seq += 1
            record = _Record(self._seq)
            self._records[resource_type][resource_id] = record
            self._on_undo(lambda: self._records[resource_type].pop(resource_id, None))
        else:
            self._on_undo(record.versions.pop)
        stamp = self._tick(at)
        version_id = len(record.versions) + 1
        stored: dict[str, Any] | None = None
        if body is not None:
            meta = {
                **copy.deepcopy(body.get("meta") or {}),
                "versionId": str(version_id),
                "lastUpdated": instant(stamp),
            }
            rest = {k: copy.deepcopy(v) for k, v in body.items() if k not in ("resourceType", "id", "meta")}
            stored = {"resourceType": resource_type, "id": resource_id, "meta": meta, **rest}
        version = Version(resource_type, resource_id, version_id, stamp, stored)
        record.versions.append(version)
        return version

    def create(
        self, resource: dict[str, Any], *, resource_id: str | None = None, at: datetime | None = None
    ) -> Version:
        resource_type = str(resource["resourceType"])
        return self._append(resource_type, resource_id or self.new_id(), resource, at)

    def update(self, resource_type: str, resource_id: str, resource: dict[str, Any]) -> tuple[Version, bool]:
        """A new version; (version, created) — created when the id was unknown or deleted."""
        created = not self.exists(resource_type, resource_id)
        return self._append(resource_type, resource_id, resource, None), created

    def delete(self, resource_type: str, resource_id: str) -> Version | None:
        """Writes a deletion; None when there was nothing live to delete."""
        if not self.exists(resource_type, resource_id):
            return None
        return self._append(resource_type, resource_id, None, None)

    # --- all or nothing --------------------------------------------------------------------------------
    def _on_undo(self, step: Callable[[], object]) -> None:
        if self._undo is not None:
            self._undo.append(step)

    @contextmanager
    def atomic(self) -> Iterator[None]:
        """Every write in the block, or none of them (nested blocks join the outer one)."""
        if self._undo is not None:
            yield
            return
        self._undo = []
        state = (self._rng.getstate(), self._seq, self._last)
        try:
            yield
        except BaseException:
            for step in reversed(self._undo):
                step()
            self._rng.setstate(state[0])
            self._seq, self._last = state[1], state[2]
            raise
        finally:
            self._undo = None
