"""Recovery goals the participant chooses."""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Self

from pydantic import model_validator

from .common import DomainModel, LongText, RecordId, RecordMeta


class GoalStatus(StrEnum):
    PROPOSED = "proposed"
    ACTIVE = "active"
    ON_HOLD = "on-hold"
    ACHIEVED = "achieved"
    CANCELLED = "cancelled"


class GoalDomain(StrEnum):
    HOUSING = "housing"
    EMPLOYMENT = "employment"
    EDUCATION = "education"
    RELATIONSHIPS = "relationships"
    HEALTH = "health"
    RECOVERY = "recovery"
    OTHER = "other"


class GoalFields(DomainModel):
    participant_id: RecordId
    description: LongText
    domain: GoalDomain = GoalDomain.OTHER
    start_date: date | None = None
    target_date: date | None = None
    status: GoalStatus = GoalStatus.PROPOSED

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.start_date and self.target_date and self.target_date < self.start_date:
            raise ValueError("target_date is before start_date")
        return self


class Goal(GoalFields, RecordMeta):
    pass
