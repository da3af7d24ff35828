"""How long batch matching takes: 1,000 referrals planned across 200 specialists.

    python -m tests.bench.bench_matching [ROUNDS]

On the seeded synthetic program of tests/matching/synthetic.py, times in the same run (best of
ROUNDS): the whole batch plan (scoring every referral-specialist pair against the hard constraints
and the weighted factors, then scipy's linear_sum_assignment over the specialists' free slots), and
as the floor, greedy assignment of the same queue (the same scoring, then each referral in queue
order takes its best free match). Prints both, the ratio, how the batch time splits between scoring
and solving, the totals of both plans, and whether the batch plan met the target (under 2 s).
"""

from __future__ import annotations

import sys
import time

from service.domain.matching import plan
from service.domain.matching.config import load_config
from tests.matching.synthetic import TODAY, program

REFERRALS, SPECIALISTS, SEED = 1000, 200, 2026
TARGET_SECONDS = 2.0


def main(rounds: int = 3, referrals: int = REFERRALS, specialists: int = SPECIALISTS) -> float:
    """Run the benchmark and print it; the ratio of batch to greedy time."""
    seekers, candidates = program(referrals, specialists, seed=SEED)
    weights = load_config().weights
    best: dict[str, float] = {}
    batch = greedy = None
    for _ in range(rounds):
        started = time.perf_counter()
        problem = plan.problem(seekers, candidates, weights, TODAY)
        scored = time.perf_counter()
        batch = plan.batch(problem)
        done = time.perf_counter()
        greedy_started = time.perf_counter()
        floor_problem = plan.problem(seekers, candidates, weights, TODAY)
        greedy = plan.greedy(floor_problem)
        greedy_done = time.perf_counter()
        for name, seconds in (
            ("batch", done - started),
            ("scoring", scored - started),
            ("solver", done - scored),
            ("greedy", greedy_done - greedy_started),
        ):
            best[name] = min(best.get(name, seconds), seconds)
    assert batch is not None and greedy is not None
    ratio = best["batch"] / best["greedy"] if best["greedy"] else 0.0
    slots = sum(min(c.free, referrals) for c in candidates)
    print(f"matching: {referrals} referrals x {specialists} specialists ({slots} free slots), best of {rounds}")
    print(
        f"  batch plan {best['batch']:.3f} s (scoring {best['scoring']:.3f} s, solver {best['solver']:.3f} s); "
        f"greedy floor {best['greedy']:.3f} s; ratio {ratio:.2f}x"
    )
    print(
        f"  batch: {len(batch.assignments)} assigned, total score {batch.total_score:.1f}; "
        f"greedy: {len(greedy.assignments)} assigned, total score {greedy.total_score:.1f}"
    )
    verdict = "met" if best["batch"] < TARGET_SECONDS else "MISSED"
    print(f"  target: batch plan under {TARGET_SECONDS:g} s: {verdict}")
    return ratio


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
