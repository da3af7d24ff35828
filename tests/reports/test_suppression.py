"""Small-cell suppression (suppression.toml): 10 participants suppressed, 11 shown; shares that give a
small count away; groups recoverable by subtraction; the policy file checked when read."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from service.reports.compute import figures
from service.reports.document import ProgramRef, build, complementary
from service.reports.policy import POLICY_FILE, Policy, PolicyError, load_policy, read_policy
from tests.reports.support import REGISTRY, facts, people, phq9, sessions_for

JAN, NOV = date(2026, 1, 15), date(2026, 11, 15)
POLICY = load_policy()
STRICT_OFF = POLICY.model_copy(update={"suppress_small_numerators": False})


def report(n_improving: int, n_steady: int = 0, n_worse: int = 0, policy: Policy = POLICY):
    """A program where each participant has a PHQ-9 in January and November, and a session."""
    totals = [(18, 8)] * n_improving + [(12, 10)] * n_steady + [(6, 14)] * n_worse
    enrolments = people(len(totals))
    assessments = [
        a
        for e, (first, last) in zip(enrolments, totals, strict=True)
        for a in (phq9(e.participant_id, JAN, first), phq9(e.participant_id, NOV, last))
    ]
    result = figures(facts(enrolments, sessions_for(enrolments, JAN), assessments), REGISTRY)
    return build(
        result, policy, ProgramRef(code="t", name="Test"), date(2026, 1, 1), date(2026, 12, 31), datetime.now(UTC)
    )


def phq9_row(document, by="program"):
    return next(r for r in document.outcomes if r.instrument == "phq-9" and r.group_by == by)


def test_the_policy_is_the_cms_threshold_with_its_source():
    assert POLICY.threshold == 11 and POLICY.marker == "suppressed"
    assert "CMS" in POLICY.source and "1 to 10" in POLICY.source and POLICY.why
    assert [POLICY.small(n) for n in (0, 1, 10, 11)] == [False, True, True, False]


def test_ten_participants_are_suppressed_eleven_are_shown():
    ten, eleven = phq9_row(report(10)), phq9_row(report(11))
    assert ten.participants == ten.mean_change == "suppressed"
    assert ten.reliable_improvement_share == ten.reliable_deterioration_share == "suppressed"
    assert eleven.participants == 11 and eleven.mean_change == -10.0
    assert eleven.reliable_improvement_share == 1.0 and eleven.reliable_deterioration_share == 0.0
    engagement_ten = next(r for r in report(10).engagement if r.group_by == "program")
    assert engagement_ten.participants == engagement_ten.sessions == "suppressed"
    assert next(r for r in report(11).engagement if r.group_by == "program").sessions == 11


def test_zero_participants_read_suppressed_not_zero():
    empty = phq9_row(report(0))
    assert empty.participants == "suppressed" and empty.mean_change == "suppressed"


def test_a_share_that_gives_away_a_small_count_is_suppressed():
    # 14 improved and 6 steady of 20: the improvement share would give the 6 away (20 - 14)
    row = phq9_row(report(14, n_steady=6))
    assert row.participants == 20 and row.mean_change == pytest.approx(round((14 * -10 + 6 * -2) / 20, 2))
    assert row.reliable_improvement_share == "suppressed"
    assert row.reliable_deterioration_share == 0.0
    lenient = phq9_row(report(14, n_steady=6, policy=STRICT_OFF))
    assert lenient.reliable_improvement_share == 0.7  # only the base counts without the numerator rule


def test_both_shares_shown_would_give_away_the_rest():
    # 12 improved, 11 worse, 5 steady: each share's count and complement are 11 or more, but both
    # together give the 5 steady away
    row = phq9_row(report(12, n_steady=5, n_worse=11))
    assert row.participants == 28
    assert row.reliable_improvement_share == round(12 / 28, 3)
    assert row.reliable_deterioration_share == "suppressed"
    shown = phq9_row(report(12, n_steady=11, n_worse=11))
    assert shown.reliable_deterioration_share == round(11 / 34, 3)


def test_a_group_recoverable_by_subtraction_is_suppressed_too():
    assert complementary({"video": 20, "phone": 5}, 25, POLICY) == {"phone", "video"}
    assert complementary({"video": 20, "phone": 12, "group": 3}, 35, POLICY) == {"group", "phone"}
    assert complementary({"video": 20, "phone": 14, "group": 11}, 45, POLICY) == set()
    assert complementary({"video": 20, "group": 0}, 20, POLICY) == {"group"}  # 0 hidden, nothing to recover


def test_groups_in_the_document_follow_the_complementary_rule():
    enrolments = people(25)
    sessions = sessions_for(enrolments[:20], JAN, "video") + sessions_for(enrolments[20:], JAN, "phone")
    assessments = [a for e in enrolments for a in (phq9(e.participant_id, JAN, 18), phq9(e.participant_id, NOV, 8))]
    result = figures(facts(enrolments, sessions, assessments), REGISTRY)
    document = build(
        result, POLICY, ProgramRef(code="t", name="T"), date(2026, 1, 1), date(2026, 12, 31), datetime.now(UTC)
    )
    by_modality = {
        r.group: r.participants for r in document.outcomes if r.instrument == "phq-9" and r.group_by == "modality"
    }
    assert by_modality == {"video": "suppressed", "phone": "suppressed"}  # 20 shown would give the 5 away
    engagement = {r.group: r.participants for r in document.engagement if r.group_by == "modality"}
    assert engagement == {"video": "suppressed", "phone": "suppressed"}
    assert phq9_row(document).participants == 25


def test_a_wrong_policy_file_fails_naming_it(tmp_path: Path):
    bad = tmp_path / "suppression.toml"
    bad.write_text(POLICY_FILE.read_text().replace("threshold = 11", "threshold = 0"))
    with pytest.raises(PolicyError, match=r"suppression\.toml is wrong: threshold"):
        read_policy(bad)
    bad.write_text("threshold = ")
    with pytest.raises(PolicyError, match="cannot be read"):
        read_policy(bad)


def test_a_label_a_spreadsheet_would_run_is_quoted_in_the_csv():
    from service.reports.render import rows

    document = report(11)
    evil = document.model_copy(
        update={"outcomes": [document.outcomes[0].model_copy(update={"group_label": "=HYPERLINK(1)"})]}
    )
    first = rows(evil)[0]
    assert first["group_label"] == "'=HYPERLINK(1)"
    numbers = next(r for r in rows(report(11)) if r["instrument"] == "phq-9" and r["group_by"] == "program")
    assert numbers["mean_change"] == "-10.0"  # a negative number is not quoted
