"""Scoring, reliable change and the follow-up schedule: pure functions over the shipped instruments."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.domain.assessment import (
    AdministeredBy,
    Assessment,
    AssessmentAnswers,
    ChangeKind,
    amendment_state,
    change,
    current,
    score,
)
from service.domain.errors import IllegalTransition, RuleViolation
from service.domain.instruments import Instrument, load_registry
from service.domain.instruments.schedule import DueStatus, due_occasions

REGISTRY = load_registry()
PHQ9, GAD7, BARC10 = (REGISTRY.get(i) for i in ("phq-9", "gad-7", "barc-10"))
INSTRUMENTS = st.sampled_from([PHQ9, GAD7, BARC10])


@st.composite
def answered(draw: st.DrawFn, instrument: Instrument | None = None) -> tuple[Instrument, dict[str, int]]:
    chosen = instrument or draw(INSTRUMENTS)
    answers = {
        item.link_id: draw(st.sampled_from([o.value for o in chosen.answer_lists[item.answers]]))
        for item in chosen.items
        if item.required or draw(st.booleans())
    }
    return chosen, answers


@given(answered())
def test_total_is_the_sum_of_scored_items_and_within_range(case):
    instrument, answers = case
    result = score(instrument, answers)
    low, high = instrument.total_range
    assert low <= result.total <= high
    assert result.total == sum(answers[i.link_id] for i in instrument.scored_items)
    band = next(b for b in instrument.bands if b.code == result.band)
    assert band.low <= result.total <= band.high


def test_ranges_are_the_published_ones():
    assert PHQ9.total_range == (0, 27) and GAD7.total_range == (0, 21) and BARC10.total_range == (10, 60)


def _answers_totalling(instrument: Instrument, total: int) -> dict[str, int]:
    """Fill the scored items greedily so that they add up to ``total``."""
    low, _ = instrument.total_range
    remaining = total - low
    answers = {}
    for item in instrument.scored_items:
        values = sorted(o.value for o in instrument.answer_lists[item.answers])
        step = min(remaining, values[-1] - values[0])
        answers[item.link_id] = values[0] + step
        remaining -= step
    assert remaining == 0
    return answers


@pytest.mark.parametrize(
    ("instrument", "edges"),
    [
        (
            PHQ9,
            [
                (0, "minimal"),
                (4, "minimal"),
                (5, "mild"),
                (9, "mild"),
                (10, "moderate"),
                (14, "moderate"),
                (15, "moderately-severe"),
                (19, "moderately-severe"),
                (20, "severe"),
                (27, "severe"),
            ],
        ),
        (
            GAD7,
            [
                (0, "minimal"),
                (4, "minimal"),
                (5, "mild"),
                (9, "mild"),
                (10, "moderate"),
                (14, "moderate"),
                (15, "severe"),
                (21, "severe"),
            ],
        ),
        (
            BARC10,
            [
                (10, "below-remission-threshold"),
                (46, "below-remission-threshold"),
                (47, "at-or-above-remission-threshold"),
                (60, "at-or-above-remission-threshold"),
            ],
        ),
    ],
    ids=["phq-9", "gad-7", "barc-10"],
)
def test_band_boundaries_are_exact_at_each_cut_point(instrument, edges):
    for total, band in edges:
        result = score(instrument, _answers_totalling(instrument, total))
        assert (result.total, result.band) == (total, band)


@given(answered(), st.data())
def test_a_missing_required_item_is_refused_naming_it(case, data):
    instrument, answers = case
    missing = data.draw(st.sampled_from([i.link_id for i in instrument.items if i.required]))
    del answers[missing]
    with pytest.raises(RuleViolation) as caught:
        score(instrument, answers)
    assert missing in caught.value.detail
    assert caught.value.errors[0]["loc"] == ["answers", missing]


@given(answered(), st.data())
def test_an_out_of_range_answer_is_refused_naming_the_item(case, data):
    instrument, answers = case
    target = data.draw(st.sampled_from(sorted(answers)))
    allowed = {o.value for o in instrument.options(target)}
    bad = data.draw(st.integers(-100, 100).filter(lambda v: v not in allowed))
    answers[target] = bad
    with pytest.raises(RuleViolation) as caught:
        score(instrument, answers)
    assert caught.value.detail == f"item {target} of {instrument.id} takes one of {sorted(allowed)}"
    assert caught.value.errors == [{"loc": ["answers", target], "msg": "not an answer option", "type": "out_of_range"}]


def test_an_unknown_item_is_refused():
    answers = _answers_totalling(GAD7, 3) | {"44250-9": 1}
    with pytest.raises(RuleViolation, match="44250-9") as caught:
        score(GAD7, answers)
    assert (
        caught.value.errors[0]["loc"] == ["answers", "44250-9"] and caught.value.errors[0]["type"] == "extra_forbidden"
    )


def test_phq9_item_9_above_zero_raises_the_safety_flag():
    answers = _answers_totalling(PHQ9, 0)
    assert score(PHQ9, answers).flags == []
    for value in (1, 2, 3):
        assert score(PHQ9, answers | {"44260-8": value}).flags == ["self-harm-thoughts"]
    answers["44250-9"] = 3
    assert score(PHQ9, answers).flags == []


def test_the_difficulty_item_is_optional_and_not_scored():
    answers = _answers_totalling(PHQ9, 7)
    assert score(PHQ9, answers | {"69722-7": 3}).total == 7 == score(PHQ9, answers).total


@pytest.mark.parametrize(
    ("instrument", "baseline", "later", "kind"),
    [
        (PHQ9, 18, 12, ChangeKind.RELIABLE_IMPROVEMENT),  # -6: reliable
        (PHQ9, 18, 13, ChangeKind.NO_RELIABLE_CHANGE),  # -5: not
        (PHQ9, 5, 11, ChangeKind.RELIABLE_DETERIORATION),
        (GAD7, 12, 8, ChangeKind.RELIABLE_IMPROVEMENT),  # -4: reliable
        (GAD7, 12, 9, ChangeKind.NO_RELIABLE_CHANGE),
        (GAD7, 4, 8, ChangeKind.RELIABLE_DETERIORATION),
        (BARC10, 30, 50, ChangeKind.UNKNOWN),  # no published threshold
    ],
)
def test_reliable_change_follows_threshold_and_direction(instrument, baseline, later, kind):
    result = change(instrument, baseline, later)
    assert result.kind is kind and result.from_baseline == later - baseline


def test_a_strengths_scale_improves_upwards():
    better = PHQ9.model_copy(update={"direction": BARC10.direction})
    assert change(better, 10, 16).kind is ChangeKind.RELIABLE_IMPROVEMENT
    assert change(PHQ9, 10, 10, is_baseline=True).kind is ChangeKind.BASELINE


def _assessment(ident: str, days: int, total: int, amends: str | None = None) -> Assessment:
    at = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(days=days)
    return Assessment(
        id=ident,
        version=1,
        created_at=at,
        updated_at=at,
        program_id="p",
        participant_id="x",
        instrument="phq-9",
        instrument_version="1.0.0",
        answers=[],
        administered_by=AdministeredBy.PARTICIPANT,
        completed_at=at,
        total=total,
        band="b",
        band_display="b",
        amends_id=amends,
        status="amended" if amends else "final",
    )


def test_corrected_assessments_do_not_stand_and_only_the_newest_can_be_amended():
    first, second = _assessment("a", 0, 10), _assessment("b", 90, 5)
    fix = _assessment("c", 1, 12, amends="a")
    assert [a.id for a in current([second, fix, first])] == ["c", "b"]
    assert amendment_state(first, superseded=False).amends_id == "a"
    with pytest.raises(IllegalTransition):
        amendment_state(first, superseded=True)


def test_peer_administration_names_the_specialist():
    with pytest.raises(ValueError, match="specialist_id"):
        AssessmentAnswers(answers=[], administered_by="peer-specialist", completed_at=datetime.now(UTC))
    twice = [{"link_id": "44250-9", "value": 1}, {"link_id": "44250-9", "value": 2}]
    with pytest.raises(ValueError, match="more than once: 44250-9"):
        AssessmentAnswers(answers=twice, administered_by="participant", completed_at=datetime.now(UTC))


SCHEDULE = REGISTRY.schedule("any")
INTAKE = date(2026, 1, 1)


def test_baseline_due_then_overdue_after_30_days():
    (due,) = due_occasions(SCHEDULE, INTAKE, [], INTAKE + timedelta(days=30), 14)
    assert (due.occasion, due.due_by, due.status) == ("baseline", INTAKE + timedelta(days=30), DueStatus.DUE)
    (late,) = due_occasions(SCHEDULE, INTAKE, [], INTAKE + timedelta(days=31), 14)
    assert late.status is DueStatus.OVERDUE


def test_repeat_every_90_days_and_the_6_month_follow_up():
    done = [INTAKE + timedelta(days=5)]
    assert due_occasions(SCHEDULE, INTAKE, done, INTAKE + timedelta(days=60), 14) == []
    found = due_occasions(SCHEDULE, INTAKE, done, INTAKE + timedelta(days=85), 14)
    assert [(d.occasion, d.due_on) for d in found] == [("repeat", INTAKE + timedelta(days=95))]
    done.append(INTAKE + timedelta(days=95))
    six = due_occasions(SCHEDULE, INTAKE, done, INTAKE + timedelta(days=150), 14)
    assert [(d.occasion, d.due_on) for d in six] == [("6-month", INTAKE + timedelta(days=180))]
    overdue = due_occasions(SCHEDULE, INTAKE, done, INTAKE + timedelta(days=220), 0)
    assert {(d.occasion, d.status) for d in overdue} == {("repeat", DueStatus.OVERDUE), ("6-month", DueStatus.OVERDUE)}
    done.append(INTAKE + timedelta(days=175))  # within the window: the 6-month follow-up is done
    assert all(d.occasion != "6-month" for d in due_occasions(SCHEDULE, INTAKE, done, INTAKE + timedelta(days=220), 0))
