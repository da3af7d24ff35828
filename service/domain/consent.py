"""Consents to share a participant's records with an outside organisation."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Self

from pydantic import AwareDatetime, Field, model_validator

from .common import DatePeriod, DomainModel, Organization, RecordId, RecordMeta
from .errors import IllegalTransition

PART2_POLICY = "https://www.ecfr.gov/current/title-42/chapter-I/subchapter-A/part-2"


class DataCategory(StrEnum):
    ENCOUNTERS = "encounters"
    NOTES = "notes"
    CARE_TEAM = "care-team"
    REFERRALS = "referrals"
    GOALS = "goals"
    DEMOGRAPHICS = "demographics"
    ASSESSMENTS = "assessments"
    """Outcome assessments (QuestionnaireResponse and the Observations scored from it). Never implied:
    a consent grants only the categories it lists, so consents recorded before this category existed
    do not open a participant's assessments until they name it."""
    SUD_COUNSELING_NOTES = "sud-counseling-notes"
    """Substance-use-disorder counseling notes (42 CFR 2.11, 2024 rule: they need a consent of
    their own). Only a consent naming this category opens them; ``notes`` never does.
    The notes carry the Part 2 labels whatever the consent's ``substance_use`` says."""


class ConsentFields(DomainModel):
    participant_id: RecordId
    recipient: Organization
    categories: list[DataCategory] = Field(min_length=1, max_length=len(DataCategory))
    substance_use: bool = Field(
        default=False, description="The records include substance-use-disorder data (42 CFR Part 2)."
    )
    period: DatePeriod

    @model_validator(mode="after")
    def _unique(self) -> Self:
        if len(set(self.categories)) != len(self.categories):
            raise ValueError("categories lists a category twice")
        return self


class ConsentState(DomainModel):
    revoked_at: AwareDatetime | None = None


class Consent(ConsentFields, ConsentState, RecordMeta):
    def is_active(self, at: datetime) -> bool:
        if self.revoked_at is not None and self.revoked_at <= at:
            return False
        return self.period.covers(at.date())


def revoke(consent: Consent, at: datetime) -> ConsentState:
    if consent.revoked_at is not None:
        raise IllegalTransition("the consent is already revoked")
    return ConsentState(revoked_at=at)
