"""Referrals from clinics to the peer program and their closed-loop state machine.

requested -> received -> accepted -> in-progress -> completed
                      \\-> rejected
cancelled from any state before completion (the clinic withdrew, or the person declined).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import AwareDatetime, Field, field_validator

from .common import (
    DomainModel,
    FhirDateTime,
    HumanName,
    Identifier,
    LongText,
    Npi,
    Organization,
    RecordId,
    RecordMeta,
    ShortText,
)
from .errors import IllegalTransition, RuleViolation


class ReferralStatus(StrEnum):
    REQUESTED = "requested"
    RECEIVED = "received"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    IN_PROGRESS = "in-progress"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class ReferralAction(StrEnum):
    RECEIVE = "receive"
    ACCEPT = "accept"
    REJECT = "reject"
    START = "start"
    COMPLETE = "complete"
    CANCEL = "cancel"


class Priority(StrEnum):
    """FHIR request priority."""

    ROUTINE = "routine"
    URGENT = "urgent"
    ASAP = "asap"
    STAT = "stat"


_OPEN = (
    ReferralStatus.REQUESTED,
    ReferralStatus.RECEIVED,
    ReferralStatus.ACCEPTED,
    ReferralStatus.IN_PROGRESS,
)

# action -> (states it may start from, state it leads to)
TRANSITIONS: dict[ReferralAction, tuple[tuple[ReferralStatus, ...], ReferralStatus]] = {
    ReferralAction.RECEIVE: ((ReferralStatus.REQUESTED,), ReferralStatus.RECEIVED),
    ReferralAction.ACCEPT: ((ReferralStatus.RECEIVED,), ReferralStatus.ACCEPTED),
    ReferralAction.REJECT: ((ReferralStatus.RECEIVED,), ReferralStatus.REJECTED),
    ReferralAction.START: ((ReferralStatus.ACCEPTED,), ReferralStatus.IN_PROGRESS),
    ReferralAction.COMPLETE: ((ReferralStatus.IN_PROGRESS,), ReferralStatus.COMPLETED),
    ReferralAction.CANCEL: (_OPEN, ReferralStatus.CANCELLED),
}
TERMINAL = frozenset({ReferralStatus.REJECTED, ReferralStatus.COMPLETED, ReferralStatus.CANCELLED})


class ReferringClinician(DomainModel):
    name: HumanName
    npi: Npi | None = None


class ReferralReason(DomainModel):
    text: LongText
    code: ShortText | None = Field(default=None, description="Optional code, e.g. an ICD-10-CM or SNOMED code.")
    system: ShortText | None = None


class ReferralFields(DomainModel):
    participant_id: RecordId
    referring_organization: Organization
    referring_clinician: ReferringClinician
    reason: ReferralReason
    priority: Priority = Priority.ROUTINE
    requested_at: AwareDatetime
    authored_on: FhirDateTime | None = Field(
        default=None,
        description="The clinic's ServiceRequest.authoredOn as sent, its precision kept (requested_at is its "
        "first instant).",
    )
    identifiers: list[Identifier] = Field(
        default_factory=list,
        max_length=20,
        description="The referring clinic's own identifiers of its order (ServiceRequest.identifier).",
    )
    task_identifiers: list[Identifier] = Field(
        default_factory=list,
        max_length=20,
        description="The referring clinic's own identifiers of its Task for the order (Task.identifier).",
    )

    @field_validator("identifiers", "task_identifiers")
    @classmethod
    def _distinct_identifiers(cls, identifiers: list[Identifier]) -> list[Identifier]:
        keys = [(i.system, i.value) for i in identifiers]
        if len(set(keys)) != len(keys):
            raise ValueError("identifiers lists the same system and value twice")
        return identifiers


class ReferralTransition(DomainModel):
    action: ReferralAction
    from_status: ReferralStatus
    to_status: ReferralStatus
    at: AwareDatetime
    by: ShortText
    reason: LongText | None = None


class ReferralState(DomainModel):
    """Changed only through transitions."""

    status: ReferralStatus = ReferralStatus.REQUESTED
    assigned_specialist_id: RecordId | None = None
    outcome_summary: LongText | None = None
    transitions: list[ReferralTransition] = Field(default_factory=list)


class AssignmentMatch(DomainModel):
    """The match as it stood when the specialist was assigned (kept for the matching report)."""

    rank: int = Field(ge=1, description="The chosen specialist's rank among the eligible ones.")
    of: int = Field(ge=1, description="How many specialists were eligible.")
    score: float = Field(ge=0)
    top_score: float = Field(ge=0, description="The top match's score.")
    overridden: bool = Field(description="The chosen specialist was not the top match.")
    factors: dict[str, float] = Field(description="Each soft factor's value (0 to 1) for the chosen specialist.")
    weights: dict[str, float] = Field(description="The weights in force at assignment.")


class Referral(ReferralFields, ReferralState, RecordMeta):
    match: AssignmentMatch | None = Field(
        default=None, description="Set when a specialist is assigned through matching; absent otherwise."
    )


class TransitionRequest(DomainModel):
    by: ShortText = Field(description="Who takes the step (user or system name).")
    reason: LongText | None = Field(default=None, description="Why; required to reject or cancel.")
    specialist_id: RecordId | None = Field(default=None, description="Peer assigned on accept.")
    outcome_summary: LongText | None = Field(default=None, description="Required to complete.")


def apply(state: ReferralState, action: ReferralAction, request: TransitionRequest, at: datetime) -> ReferralState:
    """The next state of a referral, or a domain error naming why the step is not allowed."""
    sources, target = TRANSITIONS[action]
    if state.status not in sources:
        raise IllegalTransition(f"a referral cannot '{action.value}' while it is {state.status.value}")
    if action in (ReferralAction.REJECT, ReferralAction.CANCEL) and not request.reason:
        raise RuleViolation(f"to {action.value} a referral, give a reason")
    if action is ReferralAction.COMPLETE and not request.outcome_summary:
        raise RuleViolation("to complete a referral, give an outcome_summary")
    if request.specialist_id is not None and action is not ReferralAction.ACCEPT:
        raise RuleViolation("a specialist is assigned when the referral is accepted")
    if action is ReferralAction.ACCEPT and request.specialist_id is None:
        raise RuleViolation("to accept a referral, assign a peer specialist (specialist_id)")
    specialist = request.specialist_id or state.assigned_specialist_id
    if action is ReferralAction.START and specialist is None:
        raise RuleViolation("assign a peer specialist (on accept) before starting the referral")
    step = ReferralTransition(
        action=action, from_status=state.status, to_status=target, at=at, by=request.by, reason=request.reason
    )
    return ReferralState(
        status=target,
        assigned_specialist_id=specialist,
        outcome_summary=request.outcome_summary if action is ReferralAction.COMPLETE else state.outcome_summary,
        transitions=[*state.transitions, step],
    )
