"""Participants: the people receiving peer support (a FHIR Patient)."""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Self

from pydantic import Field, model_validator

from .common import (
    Address,
    ContactPoint,
    DomainModel,
    HumanName,
    Identifier,
    IdentifierType,
    LanguageTag,
    RecordMeta,
    ShortText,
)
from .match_fields import Availability, AvailabilityList, LivedExperience, MeetingMode


class Gender(StrEnum):
    """FHIR administrative gender."""

    MALE = "male"
    FEMALE = "female"
    OTHER = "other"
    UNKNOWN = "unknown"


class MatchPreferences(DomainModel):
    """What the participant told the program to use when matching them with a peer specialist.

    Used for that purpose only, and only when given: every field is optional but the day of consent."""

    consented_on: date = Field(description="The day the participant agreed these be used to match them.")
    languages: list[LanguageTag] = Field(
        default_factory=list, max_length=10, description="Other languages they can meet in, besides `language`."
    )
    language_required: bool = Field(
        default=False, description="The specialist must speak the participant's `language` (a hard constraint)."
    )
    specialist_gender: Gender | None = None
    specialist_age_min: int | None = Field(default=None, ge=16, le=100)
    specialist_age_max: int | None = Field(default=None, ge=16, le=100)
    lived_experience: list[LivedExperience] = Field(default_factory=list, max_length=10)
    modalities: list[MeetingMode] = Field(
        default_factory=list, max_length=3, description="Ways they can meet; empty: any (a hard constraint)."
    )
    availability: AvailabilityList = Availability
    county: ShortText | None = Field(default=None, description="Their county, for meeting in person.")

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.consented_on > date.today():
            raise ValueError("consented_on is in the future")
        low, high = self.specialist_age_min, self.specialist_age_max
        if low is not None and high is not None and high < low:
            raise ValueError("specialist_age_max is below specialist_age_min")
        for name in ("lived_experience", "modalities"):
            values = getattr(self, name)
            if len(set(values)) != len(values):
                raise ValueError(f"{name} lists a value twice")
        return self


class ParticipantFields(DomainModel):
    name: HumanName
    birth_date: date
    gender: Gender
    telecom: list[ContactPoint] = Field(default_factory=list, max_length=10)
    address: Address | None = None
    language: LanguageTag = "en"
    identifiers: list[Identifier] = Field(default_factory=list, max_length=20)
    match_preferences: MatchPreferences | None = Field(
        default=None, description="Preferences for matching with a peer specialist, given with consent."
    )

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.birth_date > date.today():
            raise ValueError("birth_date is in the future")
        if self.birth_date.year < 1900:
            raise ValueError("birth_date is before 1900")
        mrn_systems = [i.system for i in self.identifiers if i.type is IdentifierType.MRN]
        if len(set(mrn_systems)) != len(mrn_systems):
            raise ValueError("a participant has at most one MRN per hospital (identifier system)")
        keys = [(i.system, i.value) for i in self.identifiers]
        if len(set(keys)) != len(keys):
            raise ValueError("identifiers lists the same system and value twice")
        return self

    def mrn(self, system: str) -> str | None:
        return next((i.value for i in self.identifiers if i.type is IdentifierType.MRN and i.system == system), None)


class Participant(ParticipantFields, RecordMeta):
    pass
