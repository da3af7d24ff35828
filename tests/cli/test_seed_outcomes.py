"""The demo's outcome assessments: answers that add up, baselines then follow-ups about every 90 days,
the same on every run, recorded (and scored) through the records layer."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, date, datetime
from itertools import pairwise

from service.cli.seed import seed_demo
from service.cli.seed_outcomes import COURSES, answers_for, intake, occasions, totals
from service.domain.assessment import score
from service.domain.instruments import load_registry
from service.records.assessments import REPOSITORY, series
from service.records.programs import get_by_code
from service.reports import outcome_report

REGISTRY = load_registry()
TODAY = date(2026, 12, 6)


def test_answers_add_up_to_the_total_and_raise_no_flag():
    for instrument_id in ("phq-9", "gad-7", "barc-10"):
        instrument = REGISTRY.get(instrument_id)
        low, high = instrument.total_range
        for total in range(low, high - 3):
            scored = score(instrument, {a.link_id: a.value for a in answers_for(instrument, total)})
            assert (scored.total, scored.flags) == (total, []), (instrument_id, total)


def test_occasions_are_a_baseline_after_intake_then_about_every_90_days_before_today():
    for index in range(12):
        enrolled = intake(index, TODAY)
        days = occasions(enrolled, TODAY, random.Random(index))
        assert 3 <= (days[0] - enrolled).days <= 10
        assert len(days) >= 2 and days[-1].date() < TODAY
        assert all(83 <= (b - a).days <= 97 for a, b in pairwise(days))


def test_trajectories_are_deterministic_and_in_range():
    phq9 = REGISTRY.get("phq-9")
    first = [totals(phq9, course, 5, random.Random(f"x{i}")) for i, course in enumerate(COURSES)]
    again = [totals(phq9, course, 5, random.Random(f"x{i}")) for i, course in enumerate(COURSES)]
    assert first == again
    assert all(0 <= t <= 24 for run in first for t in run)
    improving = [run for run, course in zip(first, COURSES, strict=True) if course.name == "improving"]
    assert all(run[-1] < run[0] for run in improving)


async def test_seeding_records_assessments_over_time_and_the_report_shows_figures(database):
    async with database.transaction() as conn:
        program = await seed_demo(conn, today=TODAY)
    assert program is not None
    async with database.read() as conn:
        assert (await get_by_code(conn, "demo")).id == program.id
        page = await REPOSITORY.list(conn, program.id, limit=500)
        report = await outcome_report(
            conn, program, REGISTRY, date(2025, 12, 7), TODAY, datetime(2026, 12, 6, 12, tzinfo=UTC)
        )
    by_participant = defaultdict(list)
    for assessment in page.items:
        by_participant[assessment.participant_id].append(assessment)
    assert len(by_participant) == 12
    instruments = {a.instrument for a in page.items}
    assert instruments == {"phq-9", "gad-7", "barc-10"}
    for items in by_participant.values():
        for found in series(items, REGISTRY):
            assert len(found.points) >= 2 and found.points[0].change.kind.value == "baseline"
    shown = [r for r in report.outcomes if r.participants != "suppressed"]
    assert {(r.group_by, r.instrument) for r in shown} == {("program", "phq-9"), ("program", "gad-7")}
    assert all(isinstance(r.mean_change, float) and r.mean_change < 0 for r in shown)  # mostly improving
