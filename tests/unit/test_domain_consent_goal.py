"""Unit tests for consents (categories, period, activity, revocation) and recovery goals."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError

from service.domain.consent import Consent, ConsentFields, ConsentState, DataCategory, revoke
from service.domain.errors import IllegalTransition
from service.domain.goal import Goal, GoalDomain, GoalFields, GoalStatus

CREATED = datetime(2024, 1, 1, 12, 0, tzinfo=UTC)
META: dict[str, Any] = {
    "id": "rec-1",
    "program_id": "prog-1",
    "version": 1,
    "created_at": CREATED,
    "updated_at": CREATED,
}


def noon(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 12, 0, tzinfo=UTC)


def errors_of(model: type[ConsentFields | GoalFields], data: dict[str, Any]) -> list[Any]:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(data)
    return list(caught.value.errors())


# --- consent fields -------------------------------------------------------------------------------


def consent_fields(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "participant_id": "part-1",
        "recipient": {"name": "General Hospital", "npi": "1234567893"},
        "categories": ["encounters", "notes"],
        "period": {"start": "2024-03-01", "end": "2024-12-31"},
    }
    data.update(overrides)
    return data


def consent(revoked_at: datetime | None = None, **overrides: Any) -> Consent:
    return Consent.model_validate({**consent_fields(**overrides), **META, "revoked_at": revoked_at})


def test_consent_fields_valid() -> None:
    fields = ConsentFields.model_validate(consent_fields())
    assert fields.categories == [DataCategory.ENCOUNTERS, DataCategory.NOTES]
    assert fields.substance_use is False


def test_consent_may_list_every_category_once() -> None:
    fields = ConsentFields.model_validate(consent_fields(categories=[c.value for c in DataCategory]))
    assert len(fields.categories) == len(DataCategory) == 8


def test_consent_needs_a_category() -> None:
    errors = errors_of(ConsentFields, consent_fields(categories=[]))
    assert (errors[0]["loc"], errors[0]["type"]) == (("categories",), "too_short")


def test_consent_category_listed_twice_is_refused() -> None:
    errors = errors_of(ConsentFields, consent_fields(categories=["notes", "goals", "notes"]))
    assert [e["msg"] for e in errors] == ["Value error, categories lists a category twice"]


def test_consent_more_categories_than_exist_is_refused() -> None:
    errors = errors_of(ConsentFields, consent_fields(categories=[*DataCategory, "notes"]))
    assert errors[0]["type"] == "too_long"


def test_consent_unknown_category() -> None:
    errors = errors_of(ConsentFields, consent_fields(categories=["billing"]))
    assert errors[0]["loc"] == ("categories", 0)


def test_consent_period_must_be_ordered() -> None:
    errors = errors_of(ConsentFields, consent_fields(period={"start": "2024-03-01", "end": "2024-02-28"}))
    assert errors[0]["loc"] == ("period",)
    assert errors[0]["msg"] == "Value error, period end is before its start"


def test_consent_period_needs_a_start() -> None:
    errors = errors_of(ConsentFields, consent_fields(period={"end": "2024-02-28"}))
    assert errors[0]["loc"] == ("period", "start")


def test_consent_recipient_is_checked() -> None:
    errors = errors_of(ConsentFields, consent_fields(recipient={"name": "General Hospital", "npi": "1234567890"}))
    assert errors[0]["loc"] == ("recipient", "npi")


@pytest.mark.parametrize(
    "data",
    [
        consent_fields(purpose="treatment"),
        consent_fields(revoked_at=CREATED.isoformat()),
        consent_fields(recipient={"name": "General Hospital", "fax": "5035550100"}),
    ],
)
def test_consent_unknown_fields_refused(data: dict[str, Any]) -> None:
    """revoked_at is state, set only by revoke: a plain create or update cannot carry it."""
    errors = errors_of(ConsentFields, data)
    assert [e["type"] for e in errors] == ["extra_forbidden"]


def test_consent_record_with_meta() -> None:
    record = consent(substance_use=True)
    assert (record.id, record.program_id, record.substance_use, record.revoked_at) == ("rec-1", "prog-1", True, None)


def test_consent_revoked_at_must_be_aware() -> None:
    with pytest.raises(ValidationError):
        consent(revoked_at=datetime(2024, 5, 1, 12, 0))


# --- Consent.is_active ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "active"),
    [
        (date(2024, 2, 29), False),
        (date(2024, 3, 1), True),
        (date(2024, 7, 4), True),
        (date(2024, 12, 31), True),
        (date(2025, 1, 1), False),
    ],
)
def test_consent_active_within_its_period(day: date, active: bool) -> None:
    assert consent().is_active(noon(day)) is active


def test_open_ended_consent_stays_active() -> None:
    open_ended = consent(period={"start": "2024-03-01"})
    assert open_ended.is_active(noon(date(2035, 1, 1)))
    assert not open_ended.is_active(noon(date(2024, 2, 1)))


def test_consent_period_bounds_use_the_local_day_of_the_time_given() -> None:
    pacific = timezone(timedelta(hours=-8))
    late_new_year_eve = datetime(2024, 12, 31, 23, 0, tzinfo=pacific)  # already 2025 in UTC
    assert consent().is_active(late_new_year_eve)


def test_revoked_consent_is_inactive_from_the_revocation() -> None:
    revoked_at = datetime(2024, 6, 1, 10, 0, tzinfo=UTC)
    record = consent(revoked_at=revoked_at)
    assert record.is_active(revoked_at - timedelta(seconds=1))
    assert not record.is_active(revoked_at)
    assert not record.is_active(revoked_at + timedelta(days=30))


def test_revocation_outside_the_period_does_not_reactivate() -> None:
    record = consent(revoked_at=datetime(2030, 1, 1, tzinfo=UTC))
    assert not record.is_active(noon(date(2025, 6, 1)))


# --- revoke ---------------------------------------------------------------------------------------


def test_revoke_returns_the_new_state() -> None:
    at = datetime(2024, 6, 1, 10, 0, tzinfo=UTC)
    assert revoke(consent(), at) == ConsentState(revoked_at=at)


def test_revoke_then_inactive() -> None:
    at = datetime(2024, 6, 1, 10, 0, tzinfo=UTC)
    before = consent()
    revoked = Consent.model_validate({**before.model_dump(), **revoke(before, at).model_dump()})
    assert revoked.revoked_at == at
    assert before.is_active(at)
    assert not revoked.is_active(at)


def test_revoke_twice_is_refused() -> None:
    already = consent(revoked_at=datetime(2024, 6, 1, 10, 0, tzinfo=UTC))
    with pytest.raises(IllegalTransition, match="the consent is already revoked"):
        revoke(already, datetime(2024, 6, 2, 10, 0, tzinfo=UTC))


# --- goals ----------------------------------------------------------------------------------------


def goal_fields(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"participant_id": "part-1", "description": "Find stable housing"}
    data.update(overrides)
    return data


def test_goal_defaults() -> None:
    fields = GoalFields.model_validate(goal_fields())
    assert (fields.domain, fields.status, fields.start_date, fields.target_date) == (
        GoalDomain.OTHER,
        GoalStatus.PROPOSED,
        None,
        None,
    )


@pytest.mark.parametrize(
    ("start", "target"),
    [("2024-03-01", "2024-06-01"), ("2024-03-01", "2024-03-01"), (None, "2024-06-01"), ("2024-03-01", None)],
)
def test_goal_dates_accepted(start: str | None, target: str | None) -> None:
    fields = GoalFields.model_validate(goal_fields(start_date=start, target_date=target))
    assert (fields.start_date is None, fields.target_date is None) == (start is None, target is None)


def test_goal_target_before_start_is_refused() -> None:
    errors = errors_of(GoalFields, goal_fields(start_date="2024-03-01", target_date="2024-02-29"))
    assert [e["msg"] for e in errors] == ["Value error, target_date is before start_date"]


@pytest.mark.parametrize(
    ("overrides", "loc"),
    [
        ({"description": ""}, ("description",)),
        ({"description": "   "}, ("description",)),
        ({"description": "x" * 20_001}, ("description",)),
        ({"domain": "finance"}, ("domain",)),
        ({"status": "done"}, ("status",)),
        ({"participant_id": "part 1"}, ("participant_id",)),
        ({"priority": "high"}, ("priority",)),
    ],
)
def test_goal_invalid(overrides: dict[str, Any], loc: tuple[str, ...]) -> None:
    errors = errors_of(GoalFields, goal_fields(**overrides))
    assert errors[0]["loc"] == loc


def test_goal_record_with_meta() -> None:
    record = Goal.model_validate({**goal_fields(domain="housing", status="active"), **META})
    assert (record.id, record.domain, record.status) == ("rec-1", GoalDomain.HOUSING, GoalStatus.ACTIVE)
