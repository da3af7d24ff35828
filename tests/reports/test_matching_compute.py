"""The matching report's pure parts: follow-up and retention, the factor and participant groups,
suppression at 10 vs 11 participants (the outcome report's rule), and the suggested weights on a
seeded synthetic history where one factor truly drives retention."""

from __future__ import annotations

import math
import random
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from service.domain.matching.config import FACTORS
from service.reports.compute import Period, Session
from service.reports.document import ProgramRef
from service.reports.matching_compute import Assignment, MatchFacts, figures, follow
from service.reports.matching_document import build
from service.reports.matching_fit import FitPolicy, load_fit_policy, suggest
from service.reports.matching_render import COLUMNS, as_csv
from service.reports.policy import load_policy

PERIOD = Period(date(2026, 1, 1), date(2026, 12, 31))
WEIGHTS = {
    "lived_experience": 3.0,
    "language": 2.0,
    "continuity": 2.0,
    "preferences": 1.5,
    "availability": 1.0,
    "capacity": 0.5,
}
NOW = datetime(2027, 1, 2, tzinfo=UTC)


def assignment(i: int, day: date, *, factors: dict[str, float] | None = None, **extra) -> Assignment:
    values = dict.fromkeys(FACTORS, 0.0) | (factors or {})
    fields: dict[str, Any] = {
        "referral_id": f"r{i:04d}",
        "participant_id": f"p{i:04d}",
        "specialist_id": "s1",
        "day": day,
        "score": sum(WEIGHTS[f] * v for f, v in values.items()),
        "top_score": 10.0,
        "overridden": False,
        "factors": values,
        "weights": WEIGHTS,
        "language": "en",
        "state": "OR",
        "age": 40,
        "areas": (),
    }
    return Assignment(**(fields | extra))


def history(seed: int, n: int, driver: str = "lived_experience", effect: float = 2.0) -> MatchFacts:
    """A seeded synthetic history: random factor values at assignment; retention at 90 days drawn with
    log-odds -1 + effect x (the driver's value), no other factor mattering; sessions to match."""
    rng = random.Random(seed)
    assignments, sessions = [], []
    for i in range(n):
        values = {
            "lived_experience": rng.choice([0.0, 0.5, 1.0]),
            "language": rng.choice([0.0, 0.5, 1.0, 1.0]),
            "continuity": 1.0 if rng.random() < 0.2 else 0.0,
            "preferences": rng.choice([0.0, 0.5, 1.0]),
            "availability": round(rng.random(), 2),
            "capacity": round(rng.random(), 2),
        }
        day = PERIOD.start + timedelta(days=rng.randrange(0, 180))
        a = assignment(i, day, factors=values, overridden=rng.random() < 0.1, language=rng.choice(["en", "es"]))
        assignments.append(a)
        sessions.append(Session(a.participant_id, "s1", "video", day + timedelta(days=3)))
        p = 1 / (1 + math.exp(-(-1.0 + effect * values[driver])))
        if rng.random() < p:
            sessions.append(Session(a.participant_id, "s1", "video", day + timedelta(days=95)))
    return MatchFacts(PERIOD, assignments, sessions)


def test_sessions_and_retention_follow_the_definitions():
    day = date(2026, 3, 1)
    a = assignment(1, day)
    late = assignment(2, date(2026, 12, 5))  # not followed 30 days by the end of the period
    other = Session("p0001", "s2", "video", day + timedelta(days=40))  # another specialist: not counted
    sessions = [Session("p0001", "s1", "video", day + timedelta(days=d)) for d in (0, 29, 30, 89)] + [other]
    (f1, f2) = follow(MatchFacts(PERIOD, [a, late, assignment(3, date(2025, 12, 1))], sessions))
    assert f1.sessions == {30: 2, 90: 4} and f1.retained == {30: True, 90: False}
    assert f2.assignment is late and f2.sessions == {} and f2.retained == {}


def test_each_assignment_falls_in_one_group_of_each_factor_and_areas_overlap():
    facts = MatchFacts(
        PERIOD,
        [
            assignment(
                1, date(2026, 2, 1), factors={"lived_experience": 0.5, "language": 1.0}, areas=("veteran", "youth")
            ),
            assignment(2, date(2026, 2, 1), factors={"language": 0.5, "continuity": 1.0}, overridden=True, age=17),
        ],
        [],
    )
    rows = {(f.group.by, f.group.key): f for f in figures(follow(facts))}
    assert rows[("lived_experience", "concordant")].assignments == 1
    assert rows[("lived_experience", "not concordant")].assignments == 1
    assert rows[("language", "same language")].assignments == 1
    assert rows[("language", "another shared language")].assignments == 1
    assert rows[("continuity", "former specialist")].assignments == 1
    assert rows[("assignment", "override")].assignments == 1 and rows[("assignment", "top match")].top_matches == 1
    assert rows[("age_band", "under 18")].assignments == 1 and rows[("age_band", "26-44")].assignments == 1
    assert rows[("lived_experience_wanted", "veteran")].assignments == 1
    assert rows[("lived_experience_wanted", "youth")].assignments == 1
    assert rows[("lived_experience_wanted", "none")].assignments == 1
    for by in ("lived_experience", "language", "preferences", "continuity", "availability", "score_band", "assignment"):
        assert sum(f.assignments for f in rows.values() if f.group.by == by) == 2


def _report(facts: MatchFacts, policy: FitPolicy | None = None):
    followed = follow(facts)
    fit = suggest(followed, WEIGHTS, policy or load_fit_policy())
    return build(figures(followed), fit, load_policy(), ProgramRef(code="p", name="P"), PERIOD.start, PERIOD.end, NOW)


@pytest.mark.parametrize(("n", "shown"), [(10, False), (11, True)])
def test_a_group_of_10_participants_is_suppressed_and_one_of_11_is_shown(n, shown):
    day = date(2026, 2, 1)
    people = [assignment(i, day, language="es") for i in range(n)]
    sessions = [Session(a.participant_id, "s1", "video", day + timedelta(days=100)) for a in people]
    report = _report(MatchFacts(PERIOD, people, sessions))
    program = next(r for r in report.rows if r.group_by == "program")
    es = next(r for r in report.rows if r.group_by == "participant_language" and r.group == "es")
    if shown:
        assert program.assignments == 11 and program.participants == 11 and program.mean_score == 0.0
        assert program.followed_90 == 11 and es.retention_90_share == 1.0
        assert program.mean_sessions_90 == 0.0  # the sessions came after 90 days
    else:
        for row in (program, es):
            assert row.assignments == row.participants == row.mean_score == "suppressed"
            assert row.retention_90_share == row.followed_90 == "suppressed"


def test_a_share_that_gives_away_a_small_count_is_suppressed():
    day = date(2026, 2, 1)
    people = [assignment(i, day) for i in range(11)]
    sessions = [Session(a.participant_id, "s1", "video", day + timedelta(days=100)) for a in people[:5]]
    program = next(r for r in _report(MatchFacts(PERIOD, people, sessions)).rows if r.group_by == "program")
    assert program.followed_90 == 11 and program.retention_90_share == "suppressed"  # 6 not retained


def test_a_small_group_and_its_complement_are_both_suppressed():
    day = date(2026, 2, 1)
    people = [assignment(i, day, language="es" if i < 5 else ("vi" if i < 24 else "en")) for i in range(45)]
    report = _report(MatchFacts(PERIOD, people, []))
    rows = {r.group: r for r in report.rows if r.group_by == "participant_language"}
    assert rows["es"].participants == "suppressed"  # 5
    assert rows["vi"].participants == "suppressed"  # 19, the smallest shown: 45 - 19 - 21 would give 5 away
    assert rows["en"].participants == 21 and rows["en"].retention_90_share == 0.0
    assert next(r for r in report.rows if r.group_by == "program").participants == 45


def test_one_factor_that_drives_retention_gets_a_positive_weight_whose_interval_excludes_zero():
    report = _report(history(seed=19, n=600))
    fit = report.suggested_weights
    assert fit.status == "fitted" and fit.assignments == 600 and fit.applied is False
    weights = {w.factor: w for w in fit.weights}
    lived = weights["lived_experience"]
    assert lived.coefficient is not None and lived.ci_low is not None and lived.ci_high is not None
    assert lived.coefficient > 0 and lived.ci_low > 0 and lived.ci_low < 2.0 < lived.ci_high
    assert lived.configured == 3.0 and lived.suggested is not None and lived.suggested > 0
    others = [w for f, w in weights.items() if f != "lived_experience"]
    assert sum(1 for w in others if w.ci_low is not None and w.ci_high is not None and w.ci_low <= 0 <= w.ci_high) >= 4
    # by factor, the concordant assignments are retained more often
    rows = {(r.group_by, r.group): r for r in report.rows}
    concordant = rows[("lived_experience", "concordant")].retention_90_share
    other = rows[("lived_experience", "not concordant")].retention_90_share
    assert isinstance(concordant, float) and isinstance(other, float) and concordant > other + 0.2


def test_below_the_threshold_the_report_says_not_enough_history():
    fit = _report(history(seed=3, n=99)).suggested_weights
    assert fit.status == "not enough history" and fit.assignments == 99 and fit.needed == 100
    assert fit.message.startswith("not enough history (99 of 100")
    assert all(w.coefficient is None and w.suggested is None for w in fit.weights)
    assert [w.configured for w in fit.weights] == list(WEIGHTS.values())


def test_a_factor_that_never_varies_is_named_and_a_fit_without_outcome_variation_is_not_made():
    facts = history(seed=5, n=200)
    flat = [Assignment(**{**a.__dict__, "factors": {**a.factors, "continuity": 0.0}}) for a in facts.assignments]
    fit = _report(MatchFacts(PERIOD, flat, facts.sessions)).suggested_weights
    assert fit.status == "fitted"
    assert next(w for w in fit.weights if w.factor == "continuity").note == "never varied"
    nobody = _report(MatchFacts(PERIOD, facts.assignments, [])).suggested_weights
    assert nobody.status == "not fitted" and "same outcome" in nobody.message


def test_the_csv_has_every_group_row_and_one_row_per_weight():
    report = _report(history(seed=7, n=150))
    lines = as_csv(report).splitlines()
    assert lines[0].split(",") == COLUMNS
    assert len(lines) == 1 + len(report.rows) + len(report.suggested_weights.weights)
    assert sum(1 for line in lines if ",weights," in line) == len(WEIGHTS)


def test_a_factor_that_separates_the_outcomes_gives_no_fit_rather_than_absurd_intervals():
    facts = history(seed=2, n=200)
    late = [
        Session(a.participant_id, "s1", "video", a.day + timedelta(days=95))
        for a in facts.assignments
        if a.factors["continuity"] == 1.0
    ]
    fit = _report(MatchFacts(PERIOD, facts.assignments, late)).suggested_weights
    assert fit.status == "not fitted" and "separate" in fit.message
    assert all(w.coefficient is None for w in fit.weights)
