"""When assessments are due: a program's follow-up schedule (data) and the pure rule that applies it.

The default schedule (``schedule.toml``): a baseline within 30 days of intake, a repeat every 90
days after the last assessment, and a fixed 6-month follow-up (SAMHSA grant reporting asks for one
6 months after intake). Intake is the day the participant was enrolled in PeerLink.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

Token = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9\-._]+$")]


class FixedFollowUp(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Token
    after_intake_days: int = Field(ge=1)


class Schedule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    instruments: list[Token] = Field(min_length=1, description="Instrument ids the schedule asks for.")
    baseline_within_days: int = Field(ge=0, description="The baseline is due by intake + this.")
    repeat_every_days: int = Field(ge=1, description="A repeat is due this long after the last assessment.")
    window_days: int = Field(ge=0, description="Grace after a due date before it is overdue; early allowance.")
    fixed: list[FixedFollowUp] = Field(default_factory=list)
    source: str = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> Self:
        if len(set(self.instruments)) != len(self.instruments):
            raise ValueError("an instrument is listed twice")
        if len({f.name for f in self.fixed}) != len(self.fixed):
            raise ValueError("two fixed follow-ups share a name")
        return self


class DueStatus(StrEnum):
    DUE = "due"
    OVERDUE = "overdue"


@dataclass(frozen=True)
class Due:
    occasion: str
    """'baseline', 'repeat' or a fixed follow-up's name."""
    due_on: date
    due_by: date
    status: DueStatus


def _due(occasion: str, due_on: date, due_by: date, today: date) -> Due:
    return Due(occasion, due_on, due_by, DueStatus.OVERDUE if today > due_by else DueStatus.DUE)


def due_occasions(schedule: Schedule, intake: date, done: Iterable[date], today: date, horizon_days: int) -> list[Due]:
    """Occasions of one instrument for one participant that are due within ``horizon_days`` of
    ``today`` or overdue, given the days it was completed."""
    days = sorted(done)
    horizon = today + timedelta(days=horizon_days)
    if not days:
        return [_due("baseline", intake, intake + timedelta(days=schedule.baseline_within_days), today)]
    found: list[Due] = []
    window = timedelta(days=schedule.window_days)
    repeat_on = days[-1] + timedelta(days=schedule.repeat_every_days)
    if repeat_on <= horizon:
        found.append(_due("repeat", repeat_on, repeat_on + window, today))
    for fixed in schedule.fixed:
        target = intake + timedelta(days=fixed.after_intake_days)
        satisfied = any(day >= target - window for day in days)
        if not satisfied and target - window <= horizon:
            found.append(_due(fixed.name, target, target + window, today))
    return found
