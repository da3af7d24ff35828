"""The matching report's figures, computed from plain facts (pure functions, no database, no I/O).

Definitions (the README's "Matching" section repeats them):
- an assignment: a referral accepted through matching (``POST /peer/v1/referrals/{id}/assign``),
  which keeps each factor's value, the score and whether the top match was overridden; its day is
  the day of the accept step (UTC); the report takes the assignments whose day is in the period;
- sessions in the first N days: finished sessions with the assigned specialist on days
  ``day`` to ``day + N - 1``, counted for the assignments followed N days (``day + N <= end``);
- retention at N days: of the assignments followed N days, the share with a finished session with
  the assigned specialist N or more days after the assignment (and by the end of the period);
- groups by match factor (the factor's value at assignment) and by participant group (the
  participant's language, state, age at assignment, the lived-experience areas they asked for:
  a participant asking for two areas counts in both rows).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, timedelta

from .compute import NONE, PROGRAM, Period, Session

FOLLOW_UP_DAYS = (30, 90)
AGE_BANDS = ((0, 17, "under 18"), (18, 25, "18-25"), (26, 44, "26-44"), (45, 64, "45-64"), (65, 200, "65 and over"))


@dataclass(frozen=True)
class Assignment:
    referral_id: str
    participant_id: str
    specialist_id: str
    day: date
    score: float
    top_score: float
    overridden: bool
    factors: dict[str, float]
    weights: dict[str, float]
    language: str
    state: str | None
    age: int | None
    areas: tuple[str, ...]
    """The lived-experience areas the participant asked for (their stated match preferences)."""

    @property
    def score_share(self) -> float:
        """The score as a share of the highest the weights allow."""
        best = sum(self.weights.values())
        return self.score / best if best > 0 else 0.0


@dataclass(frozen=True)
class MatchFacts:
    period: Period
    assignments: list[Assignment]
    sessions: list[Session]


@dataclass(frozen=True)
class Followed:
    """One assignment and what happened next."""

    assignment: Assignment
    sessions: dict[int, int]  # days -> sessions in the first N days (only the followed N days)
    retained: dict[int, bool]  # days -> a session N+ days after (only the followed N days)


@dataclass(frozen=True)
class Group:
    by: str
    key: str
    label: str


@dataclass(frozen=True)
class Cohort:
    days: int
    assignments: int
    participants: int
    sessions: int
    retained: int


@dataclass(frozen=True)
class GroupFigures:
    group: Group
    assignments: int
    participants: int
    score_total: float
    top_matches: int
    cohorts: tuple[Cohort, ...]

    @property
    def mean_score(self) -> float | None:
        return self.score_total / self.assignments if self.assignments else None


def follow(facts: MatchFacts) -> list[Followed]:
    """The assignments of the period with their sessions and retention."""
    end = facts.period.end
    by_pair: dict[tuple[str, str], list[date]] = {}
    for s in facts.sessions:
        by_pair.setdefault((s.participant_id, s.specialist_id), []).append(s.day)
    found: list[Followed] = []
    for a in sorted(facts.assignments, key=lambda a: (a.day, a.referral_id)):
        if not facts.period.holds(a.day):
            continue
        days = [d for d in by_pair.get((a.participant_id, a.specialist_id), []) if a.day <= d <= end]
        sessions: dict[int, int] = {}
        retained: dict[int, bool] = {}
        for n in FOLLOW_UP_DAYS:
            mark = a.day + timedelta(days=n)
            if mark > end:
                continue
            sessions[n] = sum(1 for d in days if d < mark)
            retained[n] = any(d >= mark for d in days)
        found.append(Followed(a, sessions, retained))
    return found


def _band(value: float, low: str, middle: str, high: str) -> str:
    return high if value >= 1.0 else (middle if value > 0 else low)


def _age_band(age: int | None) -> str:
    if age is None:
        return NONE
    return next(label for low, high, label in AGE_BANDS if low <= age <= high)


def _score_band(share: float) -> str:
    return "high (2/3 or more)" if share >= 2 / 3 else ("middle (1/3 to 2/3)" if share >= 1 / 3 else "low (under 1/3)")


def _f(name: str) -> Callable[[Assignment], float]:
    return lambda a: a.factors.get(name, 0.0)


Keys = Callable[[Assignment], Iterable[str]]
FACTOR_GROUPS: dict[str, Keys] = {
    "lived_experience": lambda a: ["concordant" if _f("lived_experience")(a) > 0 else "not concordant"],
    "language": lambda a: [_band(_f("language")(a), "no shared language", "another shared language", "same language")],
    "preferences": lambda a: [_band(_f("preferences")(a), "not met or none stated", "partly met", "met")],
    "continuity": lambda a: ["former specialist" if _f("continuity")(a) >= 1 else "new specialist"],
    "availability": lambda a: ["half or more" if _f("availability")(a) >= 0.5 else "under half"],
    "score_band": lambda a: [_score_band(a.score_share)],
    "assignment": lambda a: ["override" if a.overridden else "top match"],
}
"""Breakdowns by match factor: each assignment in exactly one group of each."""

PARTICIPANT_GROUPS: dict[str, Keys] = {
    "participant_language": lambda a: [a.language.split("-")[0].lower()],
    "participant_state": lambda a: [a.state or NONE],
    "age_band": lambda a: [_age_band(a.age)],
    "lived_experience_wanted": lambda a: list(a.areas) or [NONE],
}
"""Breakdowns by participant group; ``lived_experience_wanted`` overlaps (one row per area asked for)."""
OVERLAPPING = frozenset({"lived_experience_wanted"})


def _figures(group: Group, items: list[Followed]) -> GroupFigures:
    cohorts = []
    for n in FOLLOW_UP_DAYS:
        followed = [f for f in items if n in f.retained]
        cohorts.append(
            Cohort(
                n,
                len(followed),
                len({f.assignment.participant_id for f in followed}),
                sum(f.sessions[n] for f in followed),
                sum(1 for f in followed if f.retained[n]),
            )
        )
    return GroupFigures(
        group,
        len(items),
        len({f.assignment.participant_id for f in items}),
        sum(f.assignment.score for f in items),
        sum(1 for f in items if not f.assignment.overridden),
        tuple(cohorts),
    )


def figures(followed: list[Followed]) -> list[GroupFigures]:
    """The program row, then one row per group of each breakdown (groups sorted by key)."""
    rows = [_figures(Group(PROGRAM, "all", "All assignments"), followed)]
    for by, keys in (FACTOR_GROUPS | PARTICIPANT_GROUPS).items():
        members: dict[str, list[Followed]] = {}
        for f in followed:
            for key in dict.fromkeys(keys(f.assignment)):
                members.setdefault(key, []).append(f)
        rows += [_figures(Group(by, key, key), members[key]) for key in sorted(members)]
    return rows
