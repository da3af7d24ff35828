"""The synthetic program of the issue: 200 referrals, 40 specialists, seeded. The batch plan is
compared with greedy assignment (each referral in queue order takes its best match); the figures are
printed (``pytest -s``) and quoted in the README."""

from __future__ import annotations

from collections import Counter

import pytest

from service.domain.matching import plan
from service.domain.matching.config import load_config
from tests.matching.synthetic import TODAY, program

SEEDS = (1, 2, 3, 4, 5)


@pytest.mark.parametrize("seed", SEEDS)
def test_batch_beats_greedy_on_the_synthetic_program(seed):
    seekers, candidates = program(200, 40, seed=seed)
    problem = plan.problem(seekers, candidates, load_config().weights, TODAY)
    batch, greedy = plan.batch(problem), plan.greedy(problem)
    print(
        f"\nseed {seed}: batch {len(batch.assignments)} assigned, total score {batch.total_score:.1f} "
        f"(mean {batch.total_score / max(1, len(batch.assignments)):.2f}); greedy {len(greedy.assignments)} "
        f"assigned, total {greedy.total_score:.1f} (mean {greedy.total_score / max(1, len(greedy.assignments)):.2f})"
    )
    assert len(batch.assignments) >= len(greedy.assignments)
    assert batch.total_score > greedy.total_score
    free = {c.specialist.id: c.free for c in candidates}
    assert all(n <= free[s] for s, n in Counter(a.specialist_id for a in batch.assignments).items())


def test_the_generator_is_seeded():
    assert program(20, 5, seed=9) == program(20, 5, seed=9)
    assert program(20, 5, seed=9) != program(20, 5, seed=10)
