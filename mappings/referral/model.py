"""What both directions of the referral mapping share: the code tables (mappings/codes/referral.toml),
the NPI system, the resource kinds, and what an inbound referral reads as."""

from __future__ import annotations

from typing import Literal, NamedTuple, Self

from pydantic import BaseModel, ConfigDict, model_validator

from service.domain import ReferralFields, ReferralStatus

from .. import codes
from ..codes import Code

KIND = "referral"
TASK_KIND = "referral-task"
INTENT = "order"

RequestStatus = Literal["draft", "active", "on-hold", "revoked", "completed", "entered-in-error", "unknown"]
TaskStatus = Literal[
    "draft",
    "requested",
    "received",
    "accepted",
    "rejected",
    "ready",
    "cancelled",
    "in-progress",
    "on-hold",
    "failed",
    "completed",
    "entered-in-error",
]


class CategoryCodes(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    social_service: Code
    social_connection: Code


class OutputCodes(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    encounter: Code
    outcome_summary: Code
    baseline_outcome: Code
    latest_outcome: Code


class ContainedIds(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    role: str
    practitioner: str
    organization: str


class ReferralCodes(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    category: CategoryCodes
    service: Code
    service_request_status: dict[ReferralStatus, RequestStatus]
    inbound_service_request_status: dict[RequestStatus, ReferralStatus]
    task_code: Code
    task_status: dict[ReferralStatus, TaskStatus]
    inbound_task_status: dict[TaskStatus, ReferralStatus]
    business_status: dict[ReferralStatus, Code]
    output: OutputCodes
    contained: ContainedIds

    @model_validator(mode="after")
    def _every_status_is_mapped(self) -> Self:
        for table in ("service_request_status", "task_status", "business_status"):
            missing = set(ReferralStatus) - set(getattr(self, table))
            if missing:
                raise ValueError(f"{table} has no entry for {', '.join(sorted(missing))}")
        return self


class ContextLink(NamedTuple):
    """A resource of the referral's clinical context, as the ServiceRequest links it: as its reason
    (reasonReference) or as supporting information (supportingInfo)."""

    resource_type: str
    resource_id: str
    reason: bool


class OutcomeLink(NamedTuple):
    """An outcome assessment a completed referral's Task lists: the participant's first standing
    assessment of an instrument (``baseline``) or the newest one, shown by its total-score Observation."""

    assessment_id: str
    instrument_title: str
    baseline: bool


class InboundReferral(BaseModel):
    """What a clinic's ServiceRequest (and optional Task) says about a referral."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    fields: ReferralFields
    status: ReferralStatus
    status_reason: str | None = None


CODES = codes.load("referral", ReferralCodes)
NPI_SYSTEM = codes.systems()["npi"]
# domain field -> the FHIR element it comes from (for MappingError)
ELEMENTS = {
    "participant_id": "ServiceRequest.subject",
    "referring_organization": "ServiceRequest.requester",
    "referring_clinician": "ServiceRequest.requester",
    "reason": "ServiceRequest.reasonCode",
    "priority": "ServiceRequest.priority",
    "requested_at": "ServiceRequest.authoredOn",
    "authored_on": "ServiceRequest.authoredOn",
    "identifiers": "ServiceRequest.identifier",
    "task_identifiers": "Task.identifier",
}
