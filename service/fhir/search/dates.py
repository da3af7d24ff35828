"""FHIR date, dateTime and instant values as the ranges their precision covers (pure)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

DATE_PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le")
_DATE = re.compile(
    r"^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})?)?)?)?$"
)


def _zone(text: str | None) -> timezone:
    if not text or text == "Z":
        return UTC
    sign = -1 if text[0] == "-" else 1
    return timezone(sign * timedelta(hours=int(text[1:3]), minutes=int(text[4:6])))


def date_range(text: str) -> tuple[datetime, datetime] | None:
    """The half-open UTC range [low, high) a FHIR date, dateTime or instant covers at its own precision
    (a year, a month, a day, a minute, a second or a fraction of one); no zone means UTC. None when
    ``text`` is not such a value."""
    match = _DATE.match(text)
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    try:
        if month is None:
            low = datetime(int(year), 1, 1, tzinfo=UTC)
            return low, low.replace(year=low.year + 1)
        if day is None:
            low = datetime(int(year), int(month), 1, tzinfo=UTC)
            following = low.replace(year=low.year + 1, month=1) if low.month == 12 else low.replace(month=low.month + 1)
            return low, following
        if hour is None:
            low = datetime(int(year), int(month), int(day), tzinfo=UTC)
            return low, low + timedelta(days=1)
        digits = (fraction or ".")[1:]
        micro = int((digits + "000000")[:6]) if digits else 0
        low = datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second or 0), micro, tzinfo=_zone(zone)
        ).astimezone(UTC)
        if second is None:
            step = timedelta(minutes=1)
        elif not digits:
            step = timedelta(seconds=1)
        else:
            step = timedelta(microseconds=10 ** max(0, 6 - len(digits)))
        return low, low + step
    except (ValueError, OverflowError):
        return None
