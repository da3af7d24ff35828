"""Batch planning: assign a queue of referrals to specialists so that the total score is highest,
within each specialist's free slots; and the greedy assignment it is compared with.

The batch plan expands each specialist into one column per free slot and solves the rectangular
assignment problem with scipy's ``linear_sum_assignment`` (a modified Jonker-Volgenant solver). A
pair that breaks a hard constraint costs more than every feasible score together, so the plan first
assigns as many referrals as can be assigned and, among those plans, takes the highest total score.
The input is put in a canonical order first (the queue order; specialists by id), so the same input
gives the same plan whatever order it came in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np
from scipy.optimize import linear_sum_assignment

from .config import Weights
from .score import Candidate, Seeker, candidate_features, feasible, seeker_features, total, values


@dataclass(frozen=True)
class Assignment:
    referral_id: str
    participant_id: str
    specialist_id: str
    score: float


@dataclass(frozen=True)
class Plan:
    method: str
    assignments: list[Assignment]
    unassigned: list[str]
    """Referral ids left without a specialist (no feasible one, or no slot left)."""

    @property
    def total_score(self) -> float:
        return round(sum(a.score for a in self.assignments), 6)


@dataclass(frozen=True)
class Problem:
    seekers: list[Seeker]
    candidates: list[Candidate]
    scores: np.ndarray
    """seekers x candidates; NaN where a hard constraint is broken."""
    free: list[int]


def problem(seekers: Sequence[Seeker], candidates: Sequence[Candidate], weights: Weights, today: date) -> Problem:
    queue = sorted(seekers, key=lambda s: (s.queue_key, s.referral_id))
    specialists = sorted(candidates, key=lambda c: c.specialist.id)
    w = weights.as_tuple()
    features = [candidate_features(c, today) for c in specialists]
    scores = np.full((len(queue), len(specialists)), np.nan)
    for i, seeker in enumerate(queue):
        p = seeker_features(seeker)
        row = scores[i]
        for j, s in enumerate(features):
            if feasible(p, s):
                row[j] = total(w, values(p, s))
    return Problem(queue, specialists, scores, [c.free for c in specialists])


def _plan(problem: Problem, method: str, pairs: list[tuple[int, int]]) -> Plan:
    assigned = {i for i, _ in pairs}
    return Plan(
        method,
        [
            Assignment(
                problem.seekers[i].referral_id,
                problem.seekers[i].participant_id,
                problem.candidates[j].specialist.id,
                float(problem.scores[i, j]),
            )
            for i, j in sorted(pairs)
        ],
        [s.referral_id for i, s in enumerate(problem.seekers) if i not in assigned],
    )


def batch(problem: Problem) -> Plan:
    n = len(problem.seekers)
    slots = [min(free, n) for free in problem.free]
    if n == 0 or sum(slots) == 0:
        return _plan(problem, "batch", [])
    columns = np.repeat(np.arange(len(problem.candidates)), slots)
    scores = problem.scores[:, columns]
    ok = ~np.isnan(scores)
    big = (float(np.nanmax(scores)) + 1.0) * (n + 1) if ok.any() else 1.0
    cost = np.where(ok, -np.nan_to_num(scores), big)
    rows, cols = linear_sum_assignment(cost)
    pairs = [(int(i), int(columns[c])) for i, c in zip(rows, cols, strict=True) if ok[i, c]]
    return _plan(problem, "batch", pairs)


def greedy(problem: Problem) -> Plan:
    """Each referral in queue order takes its best feasible specialist with a slot left (ties: by id)."""
    free = np.array(problem.free, dtype=np.int64)
    usable = np.where(np.isnan(problem.scores), -np.inf, problem.scores)
    pairs: list[tuple[int, int]] = []
    for i in range(len(problem.seekers)):
        row = np.where(free > 0, usable[i], -np.inf)
        if row.size == 0:
            continue
        best = int(np.argmax(row))  # the first of equal scores: the lowest specialist id
        if row[best] > -np.inf:
            free[best] -= 1
            pairs.append((i, best))
    return _plan(problem, "greedy", pairs)
