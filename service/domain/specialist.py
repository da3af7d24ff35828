"""Peer support specialists and their state certification."""

from __future__ import annotations

from datetime import date
from typing import Self

from pydantic import Field, model_validator

from .common import DomainModel, HumanName, LanguageTag, Npi, RecordMeta, ShortText, UsState
from .match_fields import Availability, AvailabilityList, MeetingMode
from .match_fields import LivedExperience as LivedExperience
from .participant import Gender


class Certification(DomainModel):
    """A state peer-specialist certification; billing requires a current one."""

    state: UsState
    number: ShortText
    issued_on: date
    expires_on: date

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.expires_on <= self.issued_on:
            raise ValueError("certification expires on or before the day it was issued")
        return self

    def is_current(self, on: date) -> bool:
        return self.issued_on <= on <= self.expires_on


class PeerSpecialistFields(DomainModel):
    name: HumanName
    certification: Certification
    lived_experience: list[LivedExperience] = Field(default_factory=list, max_length=10)
    languages: list[LanguageTag] = Field(min_length=1, max_length=10)
    specialties: list[ShortText] = Field(default_factory=list, max_length=20)
    weekly_capacity: int = Field(default=20, ge=0, le=100, description="Sessions the specialist can take a week.")
    active: bool = True
    npi: Npi | None = None
    gender: Gender | None = None
    birth_year: int | None = Field(default=None, ge=1900, le=2100, description="For an age-range preference.")
    modalities: list[MeetingMode] = Field(
        default_factory=list, max_length=3, description="Ways the specialist meets people; empty: not recorded (any)."
    )
    availability: AvailabilityList = Availability
    county: ShortText | None = Field(default=None, description="Where the specialist meets people in person.")

    @model_validator(mode="after")
    def _unique_lists(self) -> Self:
        if len(set(self.lived_experience)) != len(self.lived_experience):
            raise ValueError("lived_experience lists an area twice")
        if len({tag.lower() for tag in self.languages}) != len(self.languages):
            raise ValueError("languages lists a language twice")
        if len(set(self.modalities)) != len(self.modalities):
            raise ValueError("modalities lists a way of meeting twice")
        return self


class PeerSpecialist(PeerSpecialistFields, RecordMeta):
    pass
