"""Unit tests for peer encounters: invariants, billing, staffing and status changes."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from pydantic import ValidationError

from service.domain.encounter import (
    EncounterStatus,
    Modality,
    PeerEncounter,
    PeerEncounterFields,
    SupportCategory,
    billable_units,
    check_staffing,
    check_status_change,
)
from service.domain.errors import IllegalTransition, RuleViolation
from service.domain.specialist import PeerSpecialist

START = datetime(2024, 6, 3, 15, 0, tzinfo=UTC)
CREATED = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
META: dict[str, Any] = {
    "id": "enc-1",
    "program_id": "prog-1",
    "version": 1,
    "created_at": CREATED,
    "updated_at": CREATED,
}
S = EncounterStatus


def encounter(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "participant_id": "part-1",
        "specialist_id": "spec-1",
        "start": START,
        "end": START + timedelta(minutes=45),
        "modality": "video",
        "support_categories": ["emotional"],
        "status": "finished",
    }
    data.update(overrides)
    return data


def planned(**overrides: Any) -> dict[str, Any]:
    return encounter(**{"end": None, "support_categories": [], "status": "planned", **overrides})


def invalid(data: dict[str, Any]) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        PeerEncounterFields.model_validate(data)
    return [str(e["msg"]) for e in caught.value.errors()]


# --- invariants -----------------------------------------------------------------------------------


def test_finished_encounter_valid() -> None:
    fields = PeerEncounterFields.model_validate(encounter())
    assert fields.status is S.FINISHED
    assert fields.modality is Modality.VIDEO
    assert fields.support_categories == [SupportCategory.EMOTIONAL]


def test_planned_encounter_needs_no_end_or_categories() -> None:
    fields = PeerEncounterFields.model_validate(
        {"participant_id": "p", "specialist_id": "s", "start": START, "modality": "phone"}
    )
    assert (fields.status, fields.end, fields.support_categories, fields.goal_ids) == (S.PLANNED, None, [], [])


@pytest.mark.parametrize("delta", [timedelta(0), timedelta(minutes=-1), timedelta(days=-1)])
def test_end_not_after_start_is_refused(delta: timedelta) -> None:
    assert invalid(encounter(end=START + delta)) == ["Value error, encounter end is not after its start"]


def test_end_before_start_is_refused_even_when_not_finished() -> None:
    messages = invalid(planned(end=START - timedelta(minutes=5)))
    assert messages == ["Value error, encounter end is not after its start"]


def test_end_one_second_after_start_is_fine() -> None:
    fields = PeerEncounterFields.model_validate(encounter(end=START + timedelta(seconds=1)))
    assert fields.duration_minutes == 0


def test_ordering_uses_instants_not_wall_clock() -> None:
    pacific = timezone(timedelta(hours=-7))
    start = datetime(2024, 6, 3, 10, 0, tzinfo=pacific)  # 17:00 UTC
    ok = PeerEncounterFields.model_validate(encounter(start=start, end=datetime(2024, 6, 3, 17, 30, tzinfo=UTC)))
    assert ok.duration_minutes == 30
    # 16:00 UTC reads "later" than 10:00 but is an hour before the start
    assert invalid(encounter(start=start, end=datetime(2024, 6, 3, 16, 0, tzinfo=UTC))) == [
        "Value error, encounter end is not after its start"
    ]


def test_twelve_hour_session_is_the_maximum() -> None:
    fields = PeerEncounterFields.model_validate(encounter(end=START + timedelta(hours=12)))
    assert fields.duration_minutes == 720


@pytest.mark.parametrize("delta", [timedelta(hours=12, seconds=1), timedelta(hours=13), timedelta(days=2)])
def test_session_longer_than_twelve_hours_is_refused(delta: timedelta) -> None:
    assert invalid(encounter(end=START + delta)) == ["Value error, an encounter lasts at most 12 hours"]


def test_finished_without_end_is_refused() -> None:
    assert invalid(encounter(end=None)) == ["Value error, a finished encounter has an end time"]


def test_finished_without_support_categories_is_refused() -> None:
    assert invalid(encounter(support_categories=[])) == [
        "Value error, a finished encounter records at least one support category delivered"
    ]


@pytest.mark.parametrize("status", ["planned", "in-progress", "cancelled", "entered-in-error"])
def test_unfinished_encounter_needs_no_categories(status: str) -> None:
    fields = PeerEncounterFields.model_validate(encounter(status=status, support_categories=[]))
    assert fields.support_categories == []


@pytest.mark.parametrize("status", ["planned", "finished"])
def test_duplicate_support_category_is_refused(status: str) -> None:
    messages = invalid(encounter(status=status, support_categories=["emotional", "instrumental", "emotional"]))
    assert messages == ["Value error, support_categories lists a category twice"]


def test_all_four_support_categories_fit() -> None:
    fields = PeerEncounterFields.model_validate(encounter(support_categories=[c.value for c in SupportCategory]))
    assert len(fields.support_categories) == 4


def test_more_than_four_support_categories_is_refused() -> None:
    with pytest.raises(ValidationError) as caught:
        PeerEncounterFields.model_validate(encounter(support_categories=[*SupportCategory, "emotional"]))
    assert caught.value.errors()[0]["type"] == "too_long"


def test_unknown_support_category_or_modality() -> None:
    with pytest.raises(ValidationError) as caught:
        PeerEncounterFields.model_validate(encounter(support_categories=["spiritual"], modality="carrier-pigeon"))
    assert {e["loc"] for e in caught.value.errors()} == {("support_categories", 0), ("modality",)}


@pytest.mark.parametrize("field", ["start", "end"])
def test_naive_datetimes_are_refused(field: str) -> None:
    naive = {"start": START.replace(tzinfo=None), "end": (START + timedelta(hours=1)).replace(tzinfo=None)}
    with pytest.raises(ValidationError) as caught:
        PeerEncounterFields.model_validate(encounter(**{field: naive[field]}))
    assert caught.value.errors()[0]["type"] == "timezone_aware"


def test_goal_ids_must_be_record_ids() -> None:
    with pytest.raises(ValidationError) as caught:
        PeerEncounterFields.model_validate(encounter(goal_ids=["goal-1", "not an id"]))
    assert caught.value.errors()[0]["loc"] == ("goal_ids", 1)


@pytest.mark.parametrize("extra", [{"units": 3}, {"duration_minutes": 45}, {"billable_units": 9}])
def test_unknown_fields_refused(extra: dict[str, Any]) -> None:
    """Computed fields are output only: sending them back in is refused too."""
    with pytest.raises(ValidationError) as caught:
        PeerEncounterFields.model_validate(encounter(**extra))
    assert [e["type"] for e in caught.value.errors()] == ["extra_forbidden"]


def test_encounter_record_with_meta() -> None:
    record = PeerEncounter.model_validate({**encounter(goal_ids=["g1"]), **META})
    assert (record.id, record.program_id, record.goal_ids) == ("enc-1", "prog-1", ["g1"])
    assert record.billable_units == 3


# --- billable units -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("minutes", "units"),
    [
        *[(m, 0) for m in range(8)],
        (8, 1),
        (15, 1),
        (22, 1),
        (23, 2),
        (30, 2),
        (37, 2),
        (38, 3),
        (45, 3),
        (52, 3),
        (53, 4),
        (60, 4),
        (67, 4),
        (68, 5),
        (720, 48),
    ],
)
def test_billable_units_eight_minute_rule(minutes: int, units: int) -> None:
    assert billable_units(minutes) == units


@pytest.mark.parametrize("minutes", [-1, -8, -1000])
def test_billable_units_negative_duration_raises(minutes: int) -> None:
    with pytest.raises(ValueError, match="duration is negative"):
        billable_units(minutes)


@given(st.integers(min_value=0, max_value=100_000))
def test_billable_units_bound(minutes: int) -> None:
    units = billable_units(minutes)
    assert units >= 0
    assert units * 15 - 7 <= minutes < units * 15 + 8


@given(st.integers(min_value=0, max_value=100_000))
def test_billable_units_monotonic_in_steps_of_one(minutes: int) -> None:
    step = billable_units(minutes + 1) - billable_units(minutes)
    assert step in (0, 1)
    # a new unit starts exactly at 8, 23, 38, ... minutes
    assert (step == 1) == ((minutes + 1) % 15 == 8)


@given(st.integers(min_value=0, max_value=12 * 60 - 1), st.integers(min_value=0, max_value=59))
def test_computed_units_follow_the_duration(minutes: int, seconds: int) -> None:
    assume(minutes or seconds)
    fields = PeerEncounterFields.model_validate(encounter(end=START + timedelta(minutes=minutes, seconds=seconds)))
    assert fields.duration_minutes == minutes  # whole minutes, rounded down
    assert fields.billable_units == billable_units(minutes)


# --- computed fields ------------------------------------------------------------------------------


def test_computed_fields_for_a_finished_encounter() -> None:
    fields = PeerEncounterFields.model_validate(encounter(end=START + timedelta(minutes=60)))
    assert (fields.duration_minutes, fields.billable_units) == (60, 4)
    dumped = fields.model_dump(mode="json")
    assert (dumped["duration_minutes"], dumped["billable_units"]) == (60, 4)


def test_duration_rounds_down_to_whole_minutes() -> None:
    fields = PeerEncounterFields.model_validate(encounter(end=START + timedelta(minutes=22, seconds=59)))
    assert (fields.duration_minutes, fields.billable_units) == (22, 1)


def test_computed_fields_without_end() -> None:
    fields = PeerEncounterFields.model_validate(planned())
    assert (fields.duration_minutes, fields.billable_units) == (None, 0)


@pytest.mark.parametrize("status", ["planned", "in-progress", "cancelled", "entered-in-error"])
def test_unfinished_encounter_bills_nothing(status: str) -> None:
    fields = PeerEncounterFields.model_validate(encounter(status=status, end=START + timedelta(minutes=60)))
    assert fields.duration_minutes == 60
    assert fields.billable_units == 0


def test_short_finished_encounter_bills_nothing() -> None:
    fields = PeerEncounterFields.model_validate(encounter(end=START + timedelta(minutes=7, seconds=59)))
    assert (fields.duration_minutes, fields.billable_units) == (7, 0)


# --- staffing -------------------------------------------------------------------------------------


def make_specialist(
    active: bool = True, issued_on: str = "2023-01-01", expires_on: str = "2025-01-01"
) -> PeerSpecialist:
    return PeerSpecialist.model_validate(
        {
            "name": {"family": "Peer"},
            "certification": {"state": "OR", "number": "PSS-1", "issued_on": issued_on, "expires_on": expires_on},
            "languages": ["en"],
            "active": active,
            **META,
            "id": "spec-1",
        }
    )


def make_encounter(status: str = "finished", start: datetime = START) -> PeerEncounterFields:
    return PeerEncounterFields.model_validate(encounter(status=status, start=start, end=start + timedelta(minutes=45)))


STAFFED = ["planned", "in-progress", "finished"]
UNSTAFFED = ["cancelled", "entered-in-error"]


@pytest.mark.parametrize("status", STAFFED)
def test_staffing_active_and_certified(status: str) -> None:
    check_staffing(make_encounter(status), make_specialist())


@pytest.mark.parametrize("status", STAFFED)
def test_staffing_inactive_specialist(status: str) -> None:
    with pytest.raises(RuleViolation, match="the peer specialist is inactive and cannot hold encounters"):
        check_staffing(make_encounter(status), make_specialist(active=False))


@pytest.mark.parametrize("status", STAFFED)
def test_staffing_expired_certification(status: str) -> None:
    specialist = make_specialist(issued_on="2022-01-01", expires_on="2024-06-02")  # the day before
    with pytest.raises(RuleViolation, match="certification is not current on the encounter date"):
        check_staffing(make_encounter(status), specialist)


@pytest.mark.parametrize("status", STAFFED)
def test_staffing_certification_not_yet_issued(status: str) -> None:
    specialist = make_specialist(issued_on="2024-06-04", expires_on="2026-06-04")  # the day after
    with pytest.raises(RuleViolation, match="certification is not current on the encounter date"):
        check_staffing(make_encounter(status), specialist)


@pytest.mark.parametrize(("issued_on", "expires_on"), [("2024-06-03", "2025-06-03"), ("2022-06-03", "2024-06-03")])
def test_staffing_certification_boundary_days_count(issued_on: str, expires_on: str) -> None:
    check_staffing(make_encounter(), make_specialist(issued_on=issued_on, expires_on=expires_on))


def test_staffing_uses_the_encounter_day_not_today() -> None:
    long_ago = datetime(2010, 3, 1, 9, 0, tzinfo=UTC)
    check_staffing(make_encounter(start=long_ago), make_specialist(issued_on="2009-01-01", expires_on="2011-01-01"))
    with pytest.raises(RuleViolation):
        check_staffing(make_encounter(start=long_ago), make_specialist())


def test_staffing_inactive_is_reported_before_certification() -> None:
    specialist = make_specialist(active=False, issued_on="2010-01-01", expires_on="2011-01-01")
    with pytest.raises(RuleViolation, match="inactive"):
        check_staffing(make_encounter(), specialist)


@pytest.mark.parametrize("status", UNSTAFFED)
@pytest.mark.parametrize(
    "specialist",
    [
        make_specialist(active=False),
        make_specialist(issued_on="2010-01-01", expires_on="2011-01-01"),
        make_specialist(issued_on="2030-01-01", expires_on="2031-01-01"),
    ],
    ids=["inactive", "expired", "not-yet-issued"],
)
def test_staffing_skipped_for_cancelled_and_entered_in_error(status: str, specialist: PeerSpecialist) -> None:
    check_staffing(make_encounter(status), specialist)


# --- status changes -------------------------------------------------------------------------------

LEGAL_CHANGES = {
    (S.PLANNED, S.IN_PROGRESS),
    (S.PLANNED, S.FINISHED),
    (S.PLANNED, S.CANCELLED),
    (S.PLANNED, S.ENTERED_IN_ERROR),
    (S.IN_PROGRESS, S.FINISHED),
    (S.IN_PROGRESS, S.CANCELLED),
    (S.IN_PROGRESS, S.ENTERED_IN_ERROR),
    (S.FINISHED, S.ENTERED_IN_ERROR),
    (S.CANCELLED, S.ENTERED_IN_ERROR),
}
ALL_CHANGES = list(itertools.product(EncounterStatus, EncounterStatus))


def _cases(legal: bool) -> list[Any]:
    return [
        pytest.param(old, new, id=f"{old.value}->{new.value}")
        for old, new in ALL_CHANGES
        if ((old, new) in LEGAL_CHANGES or old == new) is legal
    ]


@pytest.mark.parametrize(("old", "new"), _cases(legal=True))
def test_status_change_allowed(old: EncounterStatus, new: EncounterStatus) -> None:
    check_status_change(old, new)


@pytest.mark.parametrize(("old", "new"), _cases(legal=False))
def test_status_change_refused(old: EncounterStatus, new: EncounterStatus) -> None:
    with pytest.raises(IllegalTransition, match=f"an encounter cannot go from {old.value} to {new.value}"):
        check_status_change(old, new)


def test_status_matrix_is_complete() -> None:
    assert len(ALL_CHANGES) == 25
    assert (len(_cases(legal=True)), len(_cases(legal=False))) == (5 + 9, 11)


@pytest.mark.parametrize("status", list(EncounterStatus))
def test_same_status_is_fine(status: EncounterStatus) -> None:
    check_status_change(status, status)


def test_entered_in_error_is_final() -> None:
    for new in EncounterStatus:
        if new is not S.ENTERED_IN_ERROR:
            with pytest.raises(IllegalTransition):
                check_status_change(S.ENTERED_IN_ERROR, new)


def test_staffing_day_is_the_sessions_local_day() -> None:
    """The staffing day is the session's own calendar day (its offset), as the specialist sees it."""
    late = datetime(2024, 6, 30, 23, 30, tzinfo=timezone(timedelta(hours=-7)))  # already 1 July in UTC
    assert late.date() == date(2024, 6, 30)
    check_staffing(make_encounter(start=late), make_specialist(issued_on="2023-01-01", expires_on="2024-06-30"))
