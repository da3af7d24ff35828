"""Care-team membership: who (peer specialist or outside clinician) is on a participant's team."""

from __future__ import annotations

from enum import StrEnum
from typing import Self

from pydantic import Field, model_validator

from .common import DatePeriod, DomainModel, HumanName, Npi, Organization, RecordId, RecordMeta


class CareTeamRole(StrEnum):
    PEER_SPECIALIST = "peer-specialist"
    PRIMARY_CARE = "primary-care"
    PSYCHIATRIST = "psychiatrist"
    THERAPIST = "therapist"
    CASE_MANAGER = "case-manager"
    NURSE = "nurse"
    SUPERVISOR = "supervisor"
    OTHER = "other"


class ExternalClinician(DomainModel):
    name: HumanName
    npi: Npi | None = None
    organization: Organization | None = None


class CareTeamMemberFields(DomainModel):
    participant_id: RecordId
    specialist_id: RecordId | None = Field(default=None, description="Set when the member is one of our peers.")
    clinician: ExternalClinician | None = Field(default=None, description="Set when the member is outside.")
    role: CareTeamRole
    period: DatePeriod

    @model_validator(mode="after")
    def _one_member(self) -> Self:
        if (self.specialist_id is None) == (self.clinician is None):
            raise ValueError("a care-team member is either a peer specialist (specialist_id) or a clinician")
        if self.specialist_id is None and self.role is CareTeamRole.PEER_SPECIALIST:
            raise ValueError("the peer-specialist role is held by one of the program's specialists")
        return self


class CareTeamMember(CareTeamMemberFields, RecordMeta):
    pass
