"""FHIR date search values as precision ranges (service.fhir.search.dates), shared by the gateway and
the sandbox EHR: a year, month, day, minute, second or fraction, in UTC whatever the zone given."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.fhir.search import date_range


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, micro: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "low", "high"),
    [
        ("2026", utc(2026, 1, 1), utc(2027, 1, 1)),
        ("2026-01", utc(2026, 1, 1), utc(2026, 2, 1)),
        ("2024-02", utc(2024, 2, 1), utc(2024, 3, 1)),
        ("2026-12", utc(2026, 12, 1), utc(2027, 1, 1)),
        ("2026-01-05", utc(2026, 1, 5), utc(2026, 1, 6)),
        ("2024-02-29", utc(2024, 2, 29), utc(2024, 3, 1)),
        ("2026-12-31", utc(2026, 12, 31), utc(2027, 1, 1)),
        ("2026-01-05T10:00Z", utc(2026, 1, 5, 10, 0), utc(2026, 1, 5, 10, 1)),
        ("2026-01-05T10:00:00Z", utc(2026, 1, 5, 10, 0, 0), utc(2026, 1, 5, 10, 0, 1)),
        ("2026-01-05T10:00:00", utc(2026, 1, 5, 10, 0, 0), utc(2026, 1, 5, 10, 0, 1)),
        ("2026-01-05T10:00:00+02:00", utc(2026, 1, 5, 8, 0, 0), utc(2026, 1, 5, 8, 0, 1)),
        ("2026-01-05T23:30:00-05:30", utc(2026, 1, 6, 5, 0, 0), utc(2026, 1, 6, 5, 0, 1)),
        ("2026-01-05T10:00:00.5Z", utc(2026, 1, 5, 10, 0, 0, 500000), utc(2026, 1, 5, 10, 0, 0, 600000)),
        ("2026-01-05T10:00:00.123Z", utc(2026, 1, 5, 10, 0, 0, 123000), utc(2026, 1, 5, 10, 0, 0, 124000)),
        ("2026-01-05T10:00:00.123456789Z", utc(2026, 1, 5, 10, 0, 0, 123456), utc(2026, 1, 5, 10, 0, 0, 123457)),
    ],
)
def test_each_precision_covers_exactly_its_span(text, low, high):
    assert date_range(text) == (low, high)


def test_the_bounds_are_utc():
    found = date_range("2026-06-01T00:00:00+14:00")
    assert found is not None
    assert all(bound.tzinfo is UTC for bound in found)
    assert found[0] == utc(2026, 5, 31, 10)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "26",
        "20260",
        "2026-1",
        "2026-13",
        "2026-02-30",
        "2026-01-05T25:00Z",
        "2026-01-05T10Z",
        "2026-01-05T10:00:00+2",
        "2026-01-05 10:00:00",
        "2026-01-05T10:00:00 02:00",  # a query's unencoded "+" is the parser's business, not this function's
        "yesterday",
        "ge2026",
        "9999",  # its end is beyond the calendar
        "9999-12-31",
    ],
)
def test_what_is_not_a_fhir_date(text):
    assert date_range(text) is None


zones = st.integers(min_value=-14 * 60, max_value=14 * 60).map(lambda m: timezone(timedelta(minutes=m)))
moments = st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2999, 12, 31), timezones=zones)


def _offset(moment: datetime) -> str:
    minutes = int(moment.utcoffset().total_seconds() // 60)  # type: ignore[union-attr]
    sign = "-" if minutes < 0 else "+"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


@given(moments)
def test_every_precision_contains_the_moment_it_was_written_from(moment):
    seconds = moment.strftime("%Y-%m-%dT%H:%M:%S") + _offset(moment)
    minutes = moment.strftime("%Y-%m-%dT%H:%M") + _offset(moment)
    local_day = moment.strftime("%Y-%m-%d")
    for text, point in (
        (seconds, moment.replace(microsecond=0)),
        (minutes, moment.replace(second=0, microsecond=0)),
        (f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond:06d}{_offset(moment)}", moment),
    ):
        found = date_range(text)
        assert found is not None, text
        low, high = found
        assert low == point.astimezone(UTC)
        assert low < high
    day = date_range(local_day)
    month = date_range(local_day[:7])
    year = date_range(local_day[:4])
    assert day is not None and month is not None and year is not None
    # coarser precisions nest: the day lies in its month, the month in its year
    assert year[0] <= month[0] <= day[0] < day[1] <= month[1] <= year[1]
    assert day[1] - day[0] == timedelta(days=1)
    assert 28 <= (month[1] - month[0]).days <= 31
    assert (year[1] - year[0]).days in (365, 366)
