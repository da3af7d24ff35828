"""Peer encounters (sessions) and the rules that make them billable."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Self

from pydantic import AwareDatetime, Field, computed_field, model_validator

from .common import DomainModel, RecordId, RecordMeta, ShortText
from .errors import IllegalTransition, RuleViolation
from .specialist import PeerSpecialist

BILLING_UNIT_MINUTES = 15
MAX_SESSION_HOURS = 12


class Modality(StrEnum):
    IN_PERSON = "in-person"
    VIDEO = "video"
    PHONE = "phone"
    GROUP = "group"


class SupportCategory(StrEnum):
    """SAMHSA's four categories of peer support."""

    EMOTIONAL = "emotional"
    INFORMATIONAL = "informational"
    INSTRUMENTAL = "instrumental"
    AFFILIATIONAL = "affiliational"


class EncounterStatus(StrEnum):
    PLANNED = "planned"
    IN_PROGRESS = "in-progress"
    FINISHED = "finished"
    CANCELLED = "cancelled"
    ENTERED_IN_ERROR = "entered-in-error"


ENCOUNTER_TRANSITIONS: dict[EncounterStatus, frozenset[EncounterStatus]] = {
    EncounterStatus.PLANNED: frozenset(
        {
            EncounterStatus.IN_PROGRESS,
            EncounterStatus.FINISHED,
            EncounterStatus.CANCELLED,
            EncounterStatus.ENTERED_IN_ERROR,
        }
    ),
    EncounterStatus.IN_PROGRESS: frozenset(
        {EncounterStatus.FINISHED, EncounterStatus.CANCELLED, EncounterStatus.ENTERED_IN_ERROR}
    ),
    EncounterStatus.FINISHED: frozenset({EncounterStatus.ENTERED_IN_ERROR}),
    EncounterStatus.CANCELLED: frozenset({EncounterStatus.ENTERED_IN_ERROR}),
    EncounterStatus.ENTERED_IN_ERROR: frozenset(),
}


def billable_units(minutes: int) -> int:
    """Units of HCPCS H0038 (per 15 minutes) under the CMS 8-minute rule: a unit needs 8 minutes."""
    if minutes < 0:
        raise ValueError("duration is negative")
    return (minutes + 7) // BILLING_UNIT_MINUTES


class PeerEncounterFields(DomainModel):
    participant_id: RecordId
    specialist_id: RecordId
    start: AwareDatetime
    end: AwareDatetime | None = None
    modality: Modality
    location: ShortText | None = None
    support_categories: list[SupportCategory] = Field(default_factory=list, max_length=4)
    goal_ids: list[RecordId] = Field(default_factory=list, max_length=20, description="Goals addressed.")
    status: EncounterStatus = EncounterStatus.PLANNED
    group_size: int | None = Field(
        default=None,
        ge=1,
        le=200,
        description="A group session: how many participants attended in all (this one included). "
        "None for a one-on-one session.",
    )
    place_of_service: Annotated[str, Field(pattern=r"^[0-9]{2}$")] | None = Field(
        default=None,
        description="CMS place-of-service code of the session (e.g. 11 office, 10 telehealth at home); "
        "None: the payer's usual place for the session's modality.",
    )

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.end is not None:
            if self.end <= self.start:
                raise ValueError("encounter end is not after its start")
            if (self.end - self.start).total_seconds() > MAX_SESSION_HOURS * 3600:
                raise ValueError(f"an encounter lasts at most {MAX_SESSION_HOURS} hours")
        if self.status is EncounterStatus.FINISHED:
            if self.end is None:
                raise ValueError("a finished encounter has an end time")
            if not self.support_categories:
                raise ValueError("a finished encounter records at least one support category delivered")
        if len(set(self.support_categories)) != len(self.support_categories):
            raise ValueError("support_categories lists a category twice")
        return self

    @computed_field  # type: ignore[prop-decorator]
    @property
    def duration_minutes(self) -> int | None:
        if self.end is None:
            return None
        return int((self.end - self.start).total_seconds() // 60)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def billable_units(self) -> int:
        if self.status is not EncounterStatus.FINISHED or self.duration_minutes is None:
            return 0
        return billable_units(self.duration_minutes)

    @property
    def is_group(self) -> bool:
        """A group session: modality group, or more than one participant attending."""
        return self.modality is Modality.GROUP or (self.group_size or 0) > 1


class PeerEncounter(PeerEncounterFields, RecordMeta):
    pass


def check_staffing(encounter: PeerEncounterFields, specialist: PeerSpecialist) -> None:
    """An encounter needs an active specialist whose certification is current on the session day."""
    if encounter.status in (EncounterStatus.CANCELLED, EncounterStatus.ENTERED_IN_ERROR):
        return
    if not specialist.active:
        raise RuleViolation("the peer specialist is inactive and cannot hold encounters")
    if not specialist.certification.is_current(encounter.start.date()):
        raise RuleViolation("the peer specialist's certification is not current on the encounter date")


def check_status_change(old: EncounterStatus, new: EncounterStatus) -> None:
    if old != new and new not in ENCOUNTER_TRANSITIONS[old]:
        raise IllegalTransition(f"an encounter cannot go from {old.value} to {new.value}")
