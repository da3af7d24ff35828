"""When to try again: exponential backoff with full jitter, Retry-After honoured, a horizon after
which a change is dead-lettered, and a circuit breaker per connection."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from service.settings import Settings

MAX_RETRY_AFTER_SECONDS = 3600.0


def delay(attempts: int, settings: Settings, retry_after: float | None = None) -> float:
    """Seconds until the next attempt after ``attempts`` failed ones (full jitter: uniform over
    [0, min(cap, base * 2^attempts)]), never sooner than the server's Retry-After."""
    ceiling = min(settings.retry_cap_seconds, settings.retry_base_seconds * 2 ** min(attempts, 30))
    chosen = random.uniform(0, ceiling)  # noqa: S311 - jitter, not security
    if retry_after is not None:  # the server knows best, within reason
        chosen = max(chosen, min(retry_after, MAX_RETRY_AFTER_SECONDS))
    return chosen


def expired(created_at: datetime, now: datetime, settings: Settings) -> bool:
    return now - created_at > timedelta(seconds=settings.retry_horizon_seconds)


@dataclass
class Circuit:
    """Per connection, in one worker: open after ``failures`` retryable failures in a row; after the
    rest period one claim goes through (half open); a success closes it."""

    failures: int
    rest_seconds: float
    _in_a_row: dict[str, int] = field(default_factory=dict)
    _open_until: dict[str, float] = field(default_factory=dict)

    def open(self) -> frozenset[str]:
        now = time.monotonic()
        return frozenset(name for name, until in self._open_until.items() if until > now)

    def failed(self, name: str) -> None:
        self._in_a_row[name] = self._in_a_row.get(name, 0) + 1
        if self._in_a_row[name] >= self.failures:
            self._open_until[name] = time.monotonic() + self.rest_seconds

    def succeeded(self, name: str) -> None:
        self._in_a_row.pop(name, None)
        self._open_until.pop(name, None)

    def is_open(self, name: str) -> bool:
        return name in self.open()
