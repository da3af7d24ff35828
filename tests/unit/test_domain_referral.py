"""Unit tests for referrals: fields and the closed-loop state machine ``apply``."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from service.domain.errors import IllegalTransition, RuleViolation
from service.domain.referral import (
    TERMINAL,
    Priority,
    Referral,
    ReferralAction,
    ReferralFields,
    ReferralState,
    ReferralStatus,
    ReferralTransition,
    TransitionRequest,
    apply,
)

A = ReferralAction
S = ReferralStatus
T0 = datetime(2024, 4, 1, 9, 0, tzinfo=UTC)
NOW = datetime(2024, 4, 8, 14, 30, tzinfo=UTC)
CREATED = datetime(2024, 4, 1, 9, 0, tzinfo=UTC)

# Written out by hand (not read from the module), so a change to the table shows up here.
LEGAL: dict[tuple[ReferralStatus, ReferralAction], ReferralStatus] = {
    (S.REQUESTED, A.RECEIVE): S.RECEIVED,
    (S.RECEIVED, A.ACCEPT): S.ACCEPTED,
    (S.RECEIVED, A.REJECT): S.REJECTED,
    (S.ACCEPTED, A.START): S.IN_PROGRESS,
    (S.IN_PROGRESS, A.COMPLETE): S.COMPLETED,
    (S.REQUESTED, A.CANCEL): S.CANCELLED,
    (S.RECEIVED, A.CANCEL): S.CANCELLED,
    (S.ACCEPTED, A.CANCEL): S.CANCELLED,
    (S.IN_PROGRESS, A.CANCEL): S.CANCELLED,
}
ALL = list(itertools.product(ReferralStatus, ReferralAction))


def state_in(status: ReferralStatus, **overrides: Any) -> ReferralState:
    """A referral state as the store would hold it: a history step and, once accepted, a specialist."""
    assigned = "spec-1" if status in (S.ACCEPTED, S.IN_PROGRESS, S.COMPLETED) else None
    history = (
        []
        if status is S.REQUESTED
        else [
            ReferralTransition(
                action=A.RECEIVE, from_status=S.REQUESTED, to_status=S.RECEIVED, at=T0, by="intake", reason=None
            )
        ]
    )
    data: dict[str, Any] = {"status": status, "assigned_specialist_id": assigned, "transitions": history}
    data.update(overrides)
    return ReferralState.model_validate(data)


def request_for(action: ReferralAction, **overrides: Any) -> TransitionRequest:
    """The smallest request that satisfies the action's own rules."""
    data: dict[str, Any] = {"by": "coordinator"}
    if action in (A.REJECT, A.CANCEL):
        data["reason"] = "Participant moved out of the service area"
    if action is A.COMPLETE:
        data["outcome_summary"] = "Engaged for 8 sessions; connected to housing services."
    if action is A.ACCEPT:
        data["specialist_id"] = "spec-2"
    data.update(overrides)
    return TransitionRequest.model_validate(data)


def _cases(legal: bool) -> list[Any]:
    return [
        pytest.param(status, action, id=f"{status.value}-{action.value}")
        for status, action in ALL
        if ((status, action) in LEGAL) is legal
    ]


# --- the full matrix ------------------------------------------------------------------------------


def test_matrix_sizes() -> None:
    assert len(ALL) == 7 * 6
    assert (len(_cases(legal=True)), len(_cases(legal=False))) == (9, 33)


@pytest.mark.parametrize(("status", "action"), _cases(legal=True))
def test_legal_step(status: ReferralStatus, action: ReferralAction) -> None:
    before = state_in(status)
    request = request_for(action)
    after = apply(before, action, request, NOW)
    target = LEGAL[(status, action)]
    assert after.status is target
    assert after.transitions[:-1] == before.transitions
    step = after.transitions[-1]
    assert step == ReferralTransition(
        action=action, from_status=status, to_status=target, at=NOW, by="coordinator", reason=request.reason
    )


@pytest.mark.parametrize(("status", "action"), _cases(legal=False))
def test_illegal_step(status: ReferralStatus, action: ReferralAction) -> None:
    with pytest.raises(IllegalTransition, match=f"a referral cannot '{action.value}' while it is {status.value}"):
        apply(state_in(status), action, request_for(action), NOW)


@pytest.mark.parametrize(("status", "action"), _cases(legal=False))
def test_illegal_step_is_reported_before_missing_details(status: ReferralStatus, action: ReferralAction) -> None:
    """An impossible step is a conflict, whatever the request lacks."""
    with pytest.raises(IllegalTransition):
        apply(state_in(status), action, TransitionRequest(by="coordinator"), NOW)


def test_terminal_states() -> None:
    assert frozenset({S.REJECTED, S.COMPLETED, S.CANCELLED}) == TERMINAL


@pytest.mark.parametrize("status", sorted(TERMINAL))
@pytest.mark.parametrize("action", list(ReferralAction))
def test_terminal_states_allow_nothing(status: ReferralStatus, action: ReferralAction) -> None:
    with pytest.raises(IllegalTransition):
        apply(state_in(status), action, request_for(action), NOW)


@pytest.mark.parametrize("status", [s for s in ReferralStatus if s not in TERMINAL])
def test_open_states_can_always_be_cancelled(status: ReferralStatus) -> None:
    assert apply(state_in(status), A.CANCEL, request_for(A.CANCEL), NOW).status is S.CANCELLED


def test_apply_does_not_change_its_input() -> None:
    before = state_in(S.RECEIVED)
    snapshot = before.model_dump()
    apply(before, A.ACCEPT, request_for(A.ACCEPT), NOW)
    assert before.model_dump() == snapshot


# --- rules on the request -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "action"),
    [(S.RECEIVED, A.REJECT), *[(s, A.CANCEL) for s in (S.REQUESTED, S.RECEIVED, S.ACCEPTED, S.IN_PROGRESS)]],
)
def test_reject_and_cancel_need_a_reason(status: ReferralStatus, action: ReferralAction) -> None:
    with pytest.raises(RuleViolation, match=f"to {action.value} a referral, give a reason"):
        apply(state_in(status), action, request_for(action, reason=None), NOW)


def test_blank_reason_is_not_a_reason() -> None:
    with pytest.raises(ValidationError):
        request_for(A.REJECT, reason="   ")


def test_reject_records_the_reason() -> None:
    after = apply(state_in(S.RECEIVED), A.REJECT, request_for(A.REJECT, reason="Needs inpatient care"), NOW)
    assert after.transitions[-1].reason == "Needs inpatient care"


def test_optional_reason_is_kept_on_other_steps() -> None:
    after = apply(state_in(S.REQUESTED), A.RECEIVE, request_for(A.RECEIVE, reason="Faxed in"), NOW)
    assert after.transitions[-1].reason == "Faxed in"


def test_complete_needs_an_outcome_summary() -> None:
    with pytest.raises(RuleViolation, match="to complete a referral, give an outcome_summary"):
        apply(state_in(S.IN_PROGRESS), A.COMPLETE, request_for(A.COMPLETE, outcome_summary=None), NOW)


def test_complete_stores_the_outcome_summary() -> None:
    after = apply(state_in(S.IN_PROGRESS), A.COMPLETE, request_for(A.COMPLETE, outcome_summary="Goals met"), NOW)
    assert after.outcome_summary == "Goals met"


@pytest.mark.parametrize(
    ("status", "action"),
    [(s, a) for (s, a) in LEGAL if a is not A.ACCEPT],
    ids=lambda v: str(v.value),
)
def test_specialist_only_on_accept(status: ReferralStatus, action: ReferralAction) -> None:
    with pytest.raises(RuleViolation, match="a specialist is assigned when the referral is accepted"):
        apply(state_in(status), action, request_for(action, specialist_id="spec-9"), NOW)


def test_accept_assigns_the_specialist() -> None:
    after = apply(state_in(S.RECEIVED), A.ACCEPT, request_for(A.ACCEPT, specialist_id="spec-2"), NOW)
    assert after.assigned_specialist_id == "spec-2"


def test_accept_needs_a_specialist() -> None:
    with pytest.raises(RuleViolation, match="to accept a referral, assign a peer specialist"):
        apply(state_in(S.RECEIVED), A.ACCEPT, request_for(A.ACCEPT, specialist_id=None), NOW)


def test_start_needs_an_assigned_specialist() -> None:
    with pytest.raises(RuleViolation, match=r"assign a peer specialist \(on accept\) before starting the referral"):
        apply(state_in(S.ACCEPTED, assigned_specialist_id=None), A.START, request_for(A.START), NOW)


@pytest.mark.parametrize(
    ("status", "action"), [(S.ACCEPTED, A.START), (S.IN_PROGRESS, A.COMPLETE), (S.ACCEPTED, A.CANCEL)]
)
def test_later_steps_keep_the_assigned_specialist(status: ReferralStatus, action: ReferralAction) -> None:
    after = apply(state_in(status, assigned_specialist_id="spec-5"), action, request_for(action), NOW)
    assert after.assigned_specialist_id == "spec-5"


def test_transition_time_must_be_aware() -> None:
    with pytest.raises(ValidationError):
        apply(state_in(S.REQUESTED), A.RECEIVE, request_for(A.RECEIVE), NOW.replace(tzinfo=None))


def test_transition_request_refuses_unknown_fields() -> None:
    with pytest.raises(ValidationError) as caught:
        TransitionRequest.model_validate({"by": "x", "status": "completed"})
    assert caught.value.errors()[0]["type"] == "extra_forbidden"


def test_transition_request_needs_by() -> None:
    with pytest.raises(ValidationError) as caught:
        TransitionRequest.model_validate({"reason": "why"})
    assert caught.value.errors()[0]["loc"] == ("by",)


# --- a full path ----------------------------------------------------------------------------------


def test_history_accumulates_along_the_happy_path() -> None:
    state = ReferralState()
    assert (state.status, state.transitions) == (S.REQUESTED, [])
    path = [
        (A.RECEIVE, TransitionRequest(by="intake-bot"), S.RECEIVED),
        (A.ACCEPT, TransitionRequest(by="coordinator", specialist_id="spec-3", reason="Good match"), S.ACCEPTED),
        (A.START, TransitionRequest(by="spec-3"), S.IN_PROGRESS),
        (A.COMPLETE, TransitionRequest(by="spec-3", outcome_summary="Connected to a clinic"), S.COMPLETED),
    ]
    for n, (action, request, target) in enumerate(path):
        state = apply(state, action, request, NOW + timedelta(days=n))
        assert state.status is target
        assert len(state.transitions) == n + 1

    assert [(t.action, t.from_status, t.to_status) for t in state.transitions] == [
        (A.RECEIVE, S.REQUESTED, S.RECEIVED),
        (A.ACCEPT, S.RECEIVED, S.ACCEPTED),
        (A.START, S.ACCEPTED, S.IN_PROGRESS),
        (A.COMPLETE, S.IN_PROGRESS, S.COMPLETED),
    ]
    assert [t.by for t in state.transitions] == ["intake-bot", "coordinator", "spec-3", "spec-3"]
    assert [t.reason for t in state.transitions] == [None, "Good match", None, None]
    assert [t.at for t in state.transitions] == [NOW + timedelta(days=n) for n in range(4)]
    assert (state.assigned_specialist_id, state.outcome_summary) == ("spec-3", "Connected to a clinic")
    for action in ReferralAction:
        with pytest.raises(IllegalTransition):
            apply(state, action, request_for(action), NOW)


def test_cancel_after_start_keeps_the_history() -> None:
    state = state_in(S.IN_PROGRESS)
    after = apply(state, A.CANCEL, request_for(A.CANCEL, by="clinic", reason="Withdrawn"), NOW)
    assert len(after.transitions) == len(state.transitions) + 1
    assert (after.transitions[-1].by, after.transitions[-1].reason) == ("clinic", "Withdrawn")


# --- fields and records ---------------------------------------------------------------------------


def referral_fields(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "participant_id": "part-1",
        "referring_organization": {"name": "General Hospital"},
        "referring_clinician": {"name": {"family": "Clinician", "given": ["Dana"]}},
        "reason": {"text": "Engagement in outpatient care", "code": "F33.1", "system": "ICD-10-CM"},
        "requested_at": T0,
    }
    data.update(overrides)
    return data


def test_referral_fields_valid() -> None:
    fields = ReferralFields.model_validate(referral_fields())
    assert fields.priority is Priority.ROUTINE


@pytest.mark.parametrize(
    ("overrides", "loc"),
    [
        ({"requested_at": T0.replace(tzinfo=None)}, ("requested_at",)),
        ({"priority": "whenever"}, ("priority",)),
        ({"reason": {"text": ""}}, ("reason", "text")),
        ({"referring_clinician": {"name": {"family": "C"}, "npi": "1234567890"}}, ("referring_clinician", "npi")),
        ({"referring_organization": {"name": "H", "npi": "12345"}}, ("referring_organization", "npi")),
        ({"status": "completed"}, ("status",)),
        ({"transitions": []}, ("transitions",)),
    ],
)
def test_referral_fields_invalid(overrides: dict[str, Any], loc: tuple[str, ...]) -> None:
    with pytest.raises(ValidationError) as caught:
        ReferralFields.model_validate(referral_fields(**overrides))
    assert caught.value.errors()[0]["loc"] == loc


def test_referral_record_and_apply() -> None:
    record = Referral.model_validate(
        {
            **referral_fields(),
            "id": "ref-1",
            "program_id": "prog-1",
            "version": 1,
            "created_at": CREATED,
            "updated_at": CREATED,
        }
    )
    assert (record.status, record.transitions, record.assigned_specialist_id) == (S.REQUESTED, [], None)
    after = apply(record, A.RECEIVE, TransitionRequest(by="intake"), NOW)
    assert after.status is S.RECEIVED
    assert record.status is S.REQUESTED
