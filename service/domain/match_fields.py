"""What matching may use, as record fields: lived-experience areas, ways of meeting, availability.

Imported by the participant and specialist records and by :mod:`service.domain.matching`; it imports
only :mod:`service.domain.common`, so the records and the matching package never import each other.
"""

from __future__ import annotations

from datetime import time
from enum import StrEnum
from typing import Any, Self

from pydantic import Field, model_validator

from .common import DomainModel


class LivedExperience(StrEnum):
    """Areas of lived experience a specialist shares, or a participant asks for."""

    MENTAL_HEALTH = "mental-health"
    SUBSTANCE_USE = "substance-use"
    CO_OCCURRING = "co-occurring"
    VETERAN = "veteran"
    YOUTH = "youth"  # youth and young adult
    JUSTICE_INVOLVEMENT = "justice-involvement"
    FAMILY = "family"  # parent / family member of someone in recovery
    LGBTQ = "lgbtq"


class MeetingMode(StrEnum):
    """How a participant and a specialist meet (the encounter modalities, without groups)."""

    IN_PERSON = "in-person"
    VIDEO = "video"
    PHONE = "phone"


class Weekday(StrEnum):
    MON = "mon"
    TUE = "tue"
    WED = "wed"
    THU = "thu"
    FRI = "fri"
    SAT = "sat"
    SUN = "sun"


WEEKDAYS = list(Weekday)
SLOT_MINUTES = 30
"""Availability is compared in half-hours of a week (a window is rounded inwards to them)."""


class AvailabilityWindow(DomainModel):
    """A weekly window, local time of the program: ``{"day": "mon", "start": "09:00", "end": "12:00"}``."""

    day: Weekday
    start: time
    end: time

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.end <= self.start:
            raise ValueError("an availability window ends after it starts (same day)")
        return self

    def slots(self) -> int:
        """The window's half-hours of the week as bits of an int (bit 0: Monday 00:00-00:30)."""
        day = WEEKDAYS.index(self.day) * (24 * 60 // SLOT_MINUTES)
        first = -(-(self.start.hour * 60 + self.start.minute) // SLOT_MINUTES)
        last = (self.end.hour * 60 + self.end.minute) // SLOT_MINUTES
        mask = 0
        for slot in range(first, last):
            mask |= 1 << (day + slot)
        return mask


def availability_mask(windows: list[AvailabilityWindow]) -> int:
    mask = 0
    for window in windows:
        mask |= window.slots()
    return mask


AvailabilityList = list[AvailabilityWindow]
Availability: Any = Field(default_factory=list, max_length=28, description="Weekly availability windows.")
