"""Coverage on file: who pays for a participant's peer support (payer rule set, plan, member id),
for which period, and the prior authorizations the payer granted."""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Annotated, Self

from pydantic import Field, model_validator

from .common import DatePeriod, DomainModel, RecordId, RecordMeta, ShortText

PayerId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=64,
        pattern=r"^[a-z0-9][a-z0-9\-]*$",
        description="The payer rule set (GET /peer/v1/billing/payers lists them), e.g. nc-medicaid.",
    ),
]


class SubscriberRelationship(StrEnum):
    """The participant's relationship to the subscriber (X12 individual relationship codes follow later)."""

    SELF = "self"
    SPOUSE = "spouse"
    CHILD = "child"
    OTHER = "other"


class Authorization(DomainModel):
    """A prior authorization (prior approval) granted by the payer: units over a period."""

    number: ShortText = Field(description="The payer's authorization number (goes on the claim).")
    period: DatePeriod
    units: int = Field(ge=1, le=100_000, description="Units authorized in the period.")

    def covers(self, day: date) -> bool:
        return self.period.covers(day)


class CoverageFields(DomainModel):
    participant_id: RecordId
    payer: PayerId
    plan: ShortText | None = Field(default=None, description="The plan's name, e.g. a managed-care plan.")
    member_id: Annotated[str, Field(min_length=1, max_length=80, pattern=r"^[A-Za-z0-9\-]+$")] = Field(
        description="The participant's member (subscriber) id at the payer."
    )
    group_number: ShortText | None = None
    relationship: SubscriberRelationship = SubscriberRelationship.SELF
    period: DatePeriod
    rank: int = Field(default=1, ge=1, le=9, description="1 = primary; the lowest rank covering a day is billed.")
    authorizations: list[Authorization] = Field(default_factory=list, max_length=50)

    @model_validator(mode="after")
    def _distinct(self) -> Self:
        numbers = [a.number for a in self.authorizations]
        if len(set(numbers)) != len(numbers):
            raise ValueError("authorizations lists the same number twice")
        return self

    def covers(self, day: date) -> bool:
        return self.period.covers(day)


class Coverage(CoverageFields, RecordMeta):
    pass
