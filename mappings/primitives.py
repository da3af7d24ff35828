"""FHIR primitive types as the specification defines them (R4 §2.24), for inbound data.

- ``dateTime``: ``YYYY``, ``YYYY-MM``, ``YYYY-MM-DD`` or a full date-time; a time needs a zone.
- ``date``: ``YYYY``, ``YYYY-MM`` or ``YYYY-MM-DD``, no time.
- ``instant``: a full date-time with a zone, always.

The value a clinic sent is kept as sent (its precision is its meaning); the domain works with the
first instant it covers (a date without a time is read at 00:00 UTC, since FHIR gives it no zone).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

from .context import MappingError

_YEAR = r"(?P<year>[0-9]{4})"
_MONTH = r"(?P<month>0[1-9]|1[0-2])"
_DAY = r"(?P<day>0[1-9]|[12][0-9]|3[01])"
_TIME = r"(?P<time>(?:[01][0-9]|2[0-3]):[0-5][0-9]:(?:[0-5][0-9]|60)(?:\.[0-9]{1,9})?)"
_ZONE = r"(?P<zone>Z|[+-](?:(?:0[0-9]|1[0-3]):[0-5][0-9]|14:00))"
DATE = re.compile(rf"^{_YEAR}(?:-{_MONTH}(?:-{_DAY})?)?$")
DATE_TIME = re.compile(rf"^{_YEAR}(?:-{_MONTH}(?:-{_DAY}(?:T{_TIME}{_ZONE})?)?)?$")
INSTANT = re.compile(rf"^{_YEAR}-{_MONTH}-{_DAY}T{_TIME}{_ZONE}$")


def _start(match: re.Match[str], element: str) -> datetime:
    year, month, day = int(match["year"]), int(match["month"] or 1), int(match["day"] or 1)
    try:
        first_day = date(year, month, day)
    except ValueError:
        raise MappingError(element, f"{match.string!r} is not a calendar date") from None
    if match.groupdict().get("time"):
        seconds = match["time"].replace(":60", ":59")  # a leap second, read as the second before it
        return datetime.fromisoformat(f"{first_day.isoformat()}T{seconds}{match['zone'].replace('Z', '+00:00')}")
    return datetime(first_day.year, first_day.month, first_day.day, tzinfo=UTC)


def date_time(value: object, element: str) -> datetime:
    """The first instant of a FHIR dateTime (any precision FHIR allows); MappingError otherwise."""
    match = DATE_TIME.match(value) if isinstance(value, str) else None
    if match is None:
        raise MappingError(element, "a FHIR dateTime is YYYY, YYYY-MM, YYYY-MM-DD or a date-time with a zone")
    return _start(match, element)


def instant(value: object, element: str) -> datetime:
    """A FHIR instant: a full date-time with a zone."""
    match = INSTANT.match(value) if isinstance(value, str) else None
    if match is None:
        raise MappingError(element, "a FHIR instant is a full date-time with a zone, e.g. 2026-01-03T09:15:00Z")
    return _start(match, element)


def day_of(value: object, element: str) -> date:
    """A FHIR date given to the day (YYYY-MM-DD); a partial date is named for what it lacks."""
    match = DATE.match(value) if isinstance(value, str) else None
    if match is None:
        raise MappingError(element, "a FHIR date is YYYY, YYYY-MM or YYYY-MM-DD")
    if not match["day"]:
        raise MappingError(element, f"{value!r} is a valid FHIR date, but the peer program needs the day")
    return _start(match, element).date()


def precision(value: str) -> str:
    """year, month, day or time: how precise a FHIR date or dateTime is."""
    if "T" in value:
        return "time"
    return {4: "year", 7: "month", 10: "day"}.get(len(value), "time")
