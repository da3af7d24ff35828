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
)


class Gender(StrEnum):
    """FHIR administrative gender."""

    MALE = "male"
    FEMALE = "female"
    OTHER = "other"
    UNKNOWN = "unknown"


class ParticipantFields(DomainModel):
    name: HumanName
    birth_date: date
    gender: Gender
    telecom: list[ContactPoint] = Field(default_factory=list, max_length=10)
    address: Address | None = None
    language: LanguageTag = "en"
    identifiers: list[Identifier] = Field(default_factory=list, max_length=20)

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
