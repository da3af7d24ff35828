"""Batch planning on small hand-made queues: where greedy goes wrong, capacity, the queue order."""

from __future__ import annotations

from dataclasses import replace

from service.domain.match_fields import LivedExperience
from service.domain.matching import plan
from service.domain.matching.config import load_config
from tests.matching.synthetic import TODAY, peer, person

WEIGHTS = load_config().weights
VETERAN = frozenset({LivedExperience.VETERAN})


def test_batch_gives_the_scarce_specialist_to_who_needs_her_most():
    # first in the queue: a veteran who also speaks Spanish fits both; second: a Spanish speaker who
    # needs Spanish (a hard constraint) — only "esp" can take them
    first = replace(person("r1", language="es", derived_areas=VETERAN), queue_key=(3, "1", "r1"))
    second = replace(person("r2", language="es", preferences={"language_required": True}), queue_key=(3, "2", "r2"))
    esp = peer("esp", 9, languages=["es", "en"], weekly_capacity=10, lived_experience=["veteran"])
    vet = peer("vet", 0, lived_experience=["veteran"])
    problem = plan.problem([first, second], [esp, vet], WEIGHTS, TODAY)
    greedy, batch = plan.greedy(problem), plan.batch(problem)
    assert [(a.referral_id, a.specialist_id) for a in greedy.assignments] == [("r1", "esp")]
    assert greedy.unassigned == ["r2"]
    assert [(a.referral_id, a.specialist_id) for a in batch.assignments] == [("r1", "vet"), ("r2", "esp")]
    assert batch.unassigned == []


def test_no_slot_no_assignment_and_the_queue_order_decides_greedy():
    urgent = replace(person("late"), queue_key=(2, "2026-02-01", "late"))
    routine = replace(person("early"), queue_key=(3, "2026-01-01", "early"))
    one_slot = peer("only", 9)
    full = peer("full", 10)
    problem = plan.problem([routine, urgent], [full, one_slot], WEIGHTS, TODAY)
    assert [s.referral_id for s in problem.seekers] == ["late", "early"]  # urgent first
    greedy = plan.greedy(problem)
    assert [(a.referral_id, a.specialist_id) for a in greedy.assignments] == [("late", "only")]
    batch = plan.batch(problem)
    assert len(batch.assignments) == 1 and batch.assignments[0].specialist_id == "only"
    assert plan.batch(plan.problem([], [one_slot], WEIGHTS, TODAY)).assignments == []
    assert plan.batch(plan.problem([routine], [], WEIGHTS, TODAY)).unassigned == ["early"]
