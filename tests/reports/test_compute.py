"""The report's figures before suppression: change, reliable shares, engagement, retention, groups."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from service.reports.compute import (
    DAYS_PER_MONTH,
    Enrolment,
    Period,
    Session,
    figures,
    main_attribute,
    months_enrolled,
    participant_changes,
    retention,
)
from tests.reports.support import PERIOD, REGISTRY, facts, people, phq9, sessions_for

JAN, JUN, NOV = date(2026, 1, 15), date(2026, 6, 15), date(2026, 11, 15)


def program_row(result, instrument="phq-9"):
    return next(f for f in result.outcomes if f.instrument == instrument and f.group.by == "program")


def test_change_is_last_minus_first_in_the_period_and_classified_by_the_threshold():
    assessments = [
        phq9("improves", JAN, 18),
        phq9("improves", JUN, 14),
        phq9("improves", NOV, 10),  # -8: reliable (6)
        phq9("worsens", JAN, 4),
        phq9("worsens", NOV, 11),  # +7: reliable deterioration
        phq9("steady", JAN, 12),
        phq9("steady", NOV, 7),  # -5: not reliable
        phq9("once", JUN, 20),  # a single assessment: not counted
        phq9("before", date(2025, 6, 1), 24),
        phq9("before", JUN, 5),  # only one in the period
    ]
    changes = participant_changes(assessments, REGISTRY, "phq-9", PERIOD)
    assert {p: (delta, kind.value) for p, (delta, kind) in changes.items()} == {
        "improves": (-8, "reliable-improvement"),
        "worsens": (7, "reliable-deterioration"),
        "steady": (-5, "no-reliable-change"),
    }
    result = figures(facts(people(0), [], assessments), REGISTRY)
    row = program_row(result)
    assert (row.participants, row.improved, row.deteriorated) == (3, 1, 1)
    assert row.mean_change == pytest.approx((-8 + 7 - 5) / 3)


def test_a_correction_replaces_what_it_corrects():
    first = phq9("p", JAN, 20)
    corrected = phq9("p", JAN, 12, amends=first.id)
    changes = participant_changes([first, corrected, phq9("p", NOV, 10)], REGISTRY, "phq-9", PERIOD)
    assert changes["p"][0] == -2  # from the corrected 12, not the 20 it replaced


def test_the_period_bounds_are_both_included():
    day_one, last_day = PERIOD.start, PERIOD.end
    changes = participant_changes([phq9("p", day_one, 20), phq9("p", last_day, 3)], REGISTRY, "phq-9", PERIOD)
    assert changes["p"][0] == -17
    outside = [phq9("q", day_one - timedelta(days=1), 20), phq9("q", last_day, 3)]
    assert participant_changes(outside, REGISTRY, "phq-9", PERIOD) == {}


def test_sessions_per_participant_month_divides_by_the_months_enrolled_in_the_period():
    whole_year = Enrolment("a", date(2025, 3, 1))  # enrolled before: counts from the period's start
    half = Enrolment("b", date(2026, 7, 3))  # enrolled in the period: from intake
    assert months_enrolled(whole_year, PERIOD) == pytest.approx(365 / DAYS_PER_MONTH)
    assert months_enrolled(half, PERIOD) == pytest.approx(182 / DAYS_PER_MONTH)
    sessions = [Session("a", "s1", "video", JUN)] * 6 + [Session("b", "s1", "phone", NOV)] * 3
    result = figures(facts([whole_year, half], sessions, []), REGISTRY)
    row = next(e for e in result.engagement if e.group.by == "program")
    assert (row.participants, row.sessions) == (2, 9)
    assert row.sessions_per_participant_month == pytest.approx(9 / ((365 + 182) / DAYS_PER_MONTH))


def test_served_means_a_session_in_the_period_or_intake_in_it():
    long_gone = Enrolment("gone", date(2024, 1, 1))  # no session in the period, enrolled before it
    new = Enrolment("new", date(2026, 12, 1))  # enrolled in the period, no session yet
    later = Enrolment("later", date(2027, 1, 5))  # enrolled after the period
    result = figures(facts([long_gone, new, later], [Session("gone", "s1", "video", date(2025, 6, 1))], []), REGISTRY)
    program = next(e for e in result.engagement if e.group.by == "program")
    assert (program.participants, program.sessions) == (1, 0)
    none = [e for e in result.engagement if e.group.key == "none"]
    assert [e.group.by for e in none] == ["modality", "specialist"] and all(e.participants == 1 for e in none)


def test_retention_counts_a_session_n_or_more_days_after_intake():
    intake = date(2026, 3, 1)
    cohort = [Enrolment("kept", intake), Enrolment("left", intake), Enrolment("exactly", intake)]
    sessions = [
        Session("kept", "s1", "video", intake + timedelta(days=95)),
        Session("left", "s1", "video", intake + timedelta(days=29)),
        Session("exactly", "s1", "video", intake + timedelta(days=30)),
    ]
    at_30, at_90 = retention(cohort, sessions, PERIOD, 30), retention(cohort, sessions, PERIOD, 90)
    assert (at_30.cohort, at_30.retained) == (3, 2)
    assert (at_90.cohort, at_90.retained) == (3, 1)


def test_the_retention_cohort_is_enrolled_in_the_period_at_least_n_days_before_its_end():
    short = Period(date(2026, 1, 1), date(2026, 4, 30))
    enrolments = [
        Enrolment("early", date(2026, 1, 1)),  # 119 days before the end: in both cohorts
        Enrolment("edge", date(2026, 1, 30)),  # exactly 90 days before the end: in both
        Enrolment("late", date(2026, 3, 1)),  # 60 days: the 30-day cohort only
        Enrolment("before", date(2025, 12, 31)),  # enrolled before the period: in neither
    ]
    sessions = [Session(e.participant_id, "s1", "video", date(2026, 4, 30)) for e in enrolments]
    assert retention(enrolments, sessions, short, 30).cohort == 3
    ninety = retention(enrolments, sessions, short, 90)
    assert (ninety.cohort, ninety.retained) == (2, 2)
    # a session after the period's end does not count
    after = [Session("early", "s1", "video", date(2026, 5, 2))]
    assert retention(enrolments[:1], after, short, 30).retained == 0


def test_each_participant_counts_under_their_main_modality_and_specialist():
    sessions = [
        Session("a", "s1", "video", JAN),
        Session("a", "s2", "phone", JUN),
        Session("a", "s2", "phone", NOV),
        Session("b", "s2", "group", JAN),  # a tie: the modality met first wins
        Session("b", "s1", "video", JUN),
    ]
    assert main_attribute(sessions, "modality") == {"a": "phone", "b": "group"}
    assert main_attribute(sessions, "specialist") == {"a": "s2", "b": "s2"}


def test_groups_split_the_program_row_exactly():
    enrolments = people(30)
    sessions = sessions_for(enrolments[:12], JUN, "video", "s1") + sessions_for(enrolments[12:25], JUN, "phone", "s2")
    assessments = [phq9(e.participant_id, day, total) for e in enrolments for day, total in ((JAN, 15), (NOV, 8))]
    result = figures(facts(enrolments, sessions, assessments), REGISTRY)
    for by in ("modality", "specialist"):
        rows = [f for f in result.outcomes if f.instrument == "phq-9" and f.group.by == by]
        assert sum(f.participants for f in rows) == program_row(result).participants == 30
        assert {f.group.key for f in rows} >= {"none"}
    labels = {f.group.key: f.group.label for f in result.engagement if f.group.by == "specialist"}
    assert labels == {"s1": "Alex Rivera", "s2": "Sam Nguyen", "none": "No session in the period"}
    assert {f.group.label for f in result.engagement if f.group.by == "modality"} >= {"Video", "Phone"}


def test_an_instrument_without_a_threshold_has_no_reliable_counts():
    result = figures(facts(people(0), [], []), REGISTRY)
    barc = program_row(result, "barc-10")
    assert (barc.participants, barc.threshold_known, barc.mean_change) == (0, False, None)


def test_days_are_utc_days():
    late_evening = phq9("p", date(2025, 12, 31), 20).model_copy(
        update={"completed_at": datetime(2025, 12, 31, 20, tzinfo=timezone(timedelta(hours=-5)))}
    )  # 01:00 UTC on 1 January: inside the period
    changes = participant_changes([late_evening, phq9("p", NOV, 10)], REGISTRY, "phq-9", PERIOD)
    assert changes["p"][0] == -10
