"""The windows caps and prior authorization count units in, and the ledger of ready units."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

from .rules import Period, PeriodKind


def months_before(day: date, months: int) -> date:
    """The same day ``months`` earlier (the last day of that month when it is shorter)."""
    index = day.year * 12 + day.month - 1 - months
    year, month = divmod(index, 12)
    month += 1
    following = date(year + (month == 12), month % 12 + 1, 1)
    return date(year, month, min(day.day, (following - timedelta(days=1)).day))


def window_start(period: Period, day: date) -> date:
    """The first day of the period that ends on ``day`` (inclusive)."""
    if period.kind is PeriodKind.DAY:
        return day
    if period.kind is PeriodKind.ROLLING_MONTHS:
        assert period.months is not None
        return months_before(day, period.months) + timedelta(days=1)
    if period.kind is PeriodKind.YEAR:
        year = day.year if day.month >= period.year_starts_month else day.year - 1
        return date(year, period.year_starts_month, 1)
    return date.min  # an episode: every earlier session under the same order


def describe(period: Period) -> str:
    if period.kind is PeriodKind.DAY:
        return "a day"
    if period.kind is PeriodKind.ROLLING_MONTHS:
        return f"a rolling {period.months} months"
    if period.kind is PeriodKind.YEAR:
        return "a calendar year" if period.year_starts_month == 1 else "a fiscal year"
    return "an episode of care (one order)"


LOOKBACK_DAYS = 400
"""How far before the first day asked for the sessions that count toward caps are read: longer than
any year or rolling period a rule may name (24 months is the longest rolling period: see
``lookback_days``)."""


def lookback_days(periods: list[Period]) -> int:
    longest = max((p.months or 0 for p in periods if p.kind is PeriodKind.ROLLING_MONTHS), default=0)
    return max(LOOKBACK_DAYS, longest * 31 + 1)


@dataclass(frozen=True)
class Entry:
    day: date
    units: int
    order_id: str | None
    authorization: str | None


@dataclass
class Ledger:
    """The units already marked ready for one participant under one payer, oldest first."""

    entries: list[Entry] = field(default_factory=list)

    def used(self, period: Period, day: date, order_id: str | None) -> int:
        start = window_start(period, day)
        episode = period.kind is PeriodKind.EPISODE
        return sum(e.units for e in self.entries if start <= e.day <= day and (not episode or e.order_id == order_id))

    def authorized_used(self, number: str) -> int:
        return sum(e.units for e in self.entries if e.authorization == number)

    def add(self, entry: Entry) -> None:
        self.entries.append(entry)
