"""The outcome report's figures, computed from plain facts (pure functions, no database, no I/O).

Definitions (the README's "Outcome measurement" section repeats them):
- period: ``start`` to ``end``, both days included (UTC days);
- intake: the day the participant was enrolled (the participant record's creation);
- outcomes, per instrument: the participants with two or more standing assessments of it completed
  in the period; a participant's change is the last of those totals minus the first, classified
  as a reliable improvement or deterioration by the instrument's threshold and direction;
- served: participants with a finished session in the period, or with their intake in it;
- sessions per participant per month: finished sessions in the period divided by the months the
  served participants were enrolled in the period (from the later of intake and start, to end;
  a month is 30.4375 days);
- retention at N days: of the participants with intake in the period at least N days before its
  end, the share with a finished session N or more days after intake (and by the end);
- breakdowns: each served participant belongs to one modality and one specialist: those of most of
  their finished sessions in the period (ties: the earlier first session), or "none".
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from service.domain.assessment import Assessment, ChangeKind, change, current
from service.domain.instruments import Direction, Registry

DAYS_PER_MONTH = 30.4375  # the mean Gregorian month
RETENTION_DAYS = (30, 90)
PROGRAM = "program"
NONE = "none"


def utc_day(moment: datetime) -> date:
    return moment.astimezone(UTC).date()


@dataclass(frozen=True)
class Period:
    start: date
    end: date  # included

    def holds(self, day: date) -> bool:
        return self.start <= day <= self.end


@dataclass(frozen=True)
class Enrolment:
    participant_id: str
    intake: date


@dataclass(frozen=True)
class Session:
    """A finished session."""

    participant_id: str
    specialist_id: str
    modality: str
    day: date


@dataclass(frozen=True)
class Group:
    by: str  # program, modality or specialist
    key: str
    label: str


@dataclass(frozen=True)
class OutcomeFigures:
    group: Group
    instrument: str
    title: str
    direction: Direction
    participants: int
    changes: tuple[int, ...]
    improved: int
    deteriorated: int
    threshold_known: bool

    @property
    def mean_change(self) -> float | None:
        return sum(self.changes) / len(self.changes) if self.changes else None


@dataclass(frozen=True)
class Retention:
    days: int
    cohort: int
    retained: int


@dataclass(frozen=True)
class EngagementFigures:
    group: Group
    participants: int
    sessions: int
    months: float
    retention: tuple[Retention, ...]

    @property
    def sessions_per_participant_month(self) -> float | None:
        return self.sessions / self.months if self.months > 0 else None


@dataclass(frozen=True)
class Facts:
    period: Period
    enrolments: list[Enrolment]
    sessions: list[Session]
    assessments: list[Assessment]
    specialists: dict[str, str] = field(default_factory=dict)  # id -> display name


@dataclass(frozen=True)
class Figures:
    outcomes: list[OutcomeFigures]
    engagement: list[EngagementFigures]


def participant_changes(
    assessments: Iterable[Assessment], registry: Registry, instrument_id: str, period: Period
) -> dict[str, tuple[int, ChangeKind]]:
    """Participant -> (last minus first total, its kind) over their standing assessments of the
    instrument completed in the period; only participants with two or more."""
    by_participant: dict[str, list[Assessment]] = {}
    for a in current([a for a in assessments if a.instrument == instrument_id]):
        if period.holds(utc_day(a.completed_at)):
            by_participant.setdefault(a.participant_id, []).append(a)
    found: dict[str, tuple[int, ChangeKind]] = {}
    for participant_id, series in by_participant.items():
        if len(series) >= 2:
            instrument = registry.get(instrument_id, series[-1].instrument_version)  # as the outcomes API does
            moved = change(instrument, series[0].total, series[-1].total)
            found[participant_id] = (moved.from_baseline, moved.kind)
    return found


def outcome_figures(
    group: Group, members: set[str], registry: Registry, instrument_id: str, changes: dict[str, tuple[int, ChangeKind]]
) -> OutcomeFigures:
    """The figures of one instrument for a group of participants."""
    instrument = registry.get(instrument_id)
    mine = [c for p, c in sorted(changes.items()) if p in members]
    kinds = Counter(kind for _, kind in mine)
    return OutcomeFigures(
        group=group,
        instrument=instrument.id,
        title=instrument.title,
        direction=instrument.direction,
        participants=len(mine),
        changes=tuple(delta for delta, _ in mine),
        improved=kinds[ChangeKind.RELIABLE_IMPROVEMENT],
        deteriorated=kinds[ChangeKind.RELIABLE_DETERIORATION],
        threshold_known=instrument.reliable_change is not None,
    )


def served(facts: Facts) -> dict[str, Enrolment]:
    """Participants with a finished session in the period or their intake in it (and enrolled by its end)."""
    period = facts.period
    active = {s.participant_id for s in facts.sessions if period.holds(s.day)}
    return {
        e.participant_id: e
        for e in facts.enrolments
        if e.intake <= period.end and (e.participant_id in active or period.holds(e.intake))
    }


def months_enrolled(enrolment: Enrolment, period: Period) -> float:
    first = max(enrolment.intake, period.start)
    return max((period.end - first).days + 1, 0) / DAYS_PER_MONTH


def retention(enrolments: Sequence[Enrolment], sessions: Sequence[Session], period: Period, days: int) -> Retention:
    """Of the participants with intake in the period at least ``days`` before its end, how many had a
    finished session ``days`` or more after intake (by the end of the period)."""
    cohort = [e for e in enrolments if period.start <= e.intake and (period.end - e.intake).days >= days]
    seen: dict[str, list[date]] = {}
    for s in sessions:
        seen.setdefault(s.participant_id, []).append(s.day)
    kept = sum(
        1
        for e in cohort
        if any((d - e.intake).days >= days and d <= period.end for d in seen.get(e.participant_id, []))
    )
    return Retention(days, len(cohort), kept)


def engagement_figures(group: Group, members: Sequence[Enrolment], facts: Facts) -> EngagementFigures:
    ids = {e.participant_id for e in members}
    period = facts.period
    mine = [s for s in facts.sessions if s.participant_id in ids]
    return EngagementFigures(
        group=group,
        participants=len(members),
        sessions=sum(1 for s in mine if period.holds(s.day)),
        months=sum(months_enrolled(e, period) for e in members),
        retention=tuple(retention(members, mine, period, days) for days in RETENTION_DAYS),
    )


def main_attribute(sessions: Sequence[Session], attribute: str) -> dict[str, str]:
    """Participant -> the modality (or specialist) of most of their sessions; ties go to the one
    met first (sessions are taken in day order)."""
    counts: dict[str, Counter[str]] = {}
    first_seen: dict[tuple[str, str], int] = {}
    for n, s in enumerate(sorted(sessions, key=lambda s: (s.day, s.participant_id))):
        value = s.modality if attribute == "modality" else s.specialist_id
        counts.setdefault(s.participant_id, Counter())[value] += 1
        first_seen.setdefault((s.participant_id, value), n)
    return {
        p: min(c, key=lambda v: (-c[v], first_seen[(p, v)]))  # most sessions, then the earliest
        for p, c in counts.items()
    }


@dataclass(frozen=True)
class Breakdown:
    """Who belongs to which group: the program as a whole, then per modality and per specialist
    (the main one of each participant's sessions in the period, "none" without any)."""

    groups: list[Group]
    main: dict[str, dict[str, str]]  # modality|specialist -> participant -> key

    def members(self, group: Group, people: Iterable[str]) -> set[str]:
        if group.by == PROGRAM:
            return set(people)
        return {p for p in people if self.main[group.by].get(p, NONE) == group.key}


def _modality_label(key: str) -> str:
    return key.replace("-", " ").capitalize()  # in-person -> In person


def breakdown(facts: Facts) -> Breakdown:
    in_period = [s for s in facts.sessions if facts.period.holds(s.day)]
    found = [Group(PROGRAM, "all", "All participants")]
    main: dict[str, dict[str, str]] = {}
    for by in ("modality", "specialist"):
        main[by] = main_attribute(in_period, by)
        keys = sorted(set(main[by].values()), key=lambda k: (facts.specialists.get(k, k), k))
        found += [Group(by, key, facts.specialists.get(key) or _modality_label(key)) for key in keys]
        found.append(Group(by, NONE, "No session in the period"))
    return Breakdown(found, main)


def figures(facts: Facts, registry: Registry) -> Figures:
    """Every figure of the report, before suppression. Within a breakdown the groups split the
    section's participants exactly (the "none" group is kept only when someone is in it)."""
    people = served(facts)
    split = breakdown(facts)
    outcomes: list[OutcomeFigures] = []
    for instrument_id in registry.ids:
        changes = participant_changes(facts.assessments, registry, instrument_id, facts.period)
        for group in split.groups:
            members = split.members(group, changes)
            if group.key != NONE or members:
                outcomes.append(outcome_figures(group, members, registry, instrument_id, changes))
    engagement: list[EngagementFigures] = []
    for group in split.groups:
        members = split.members(group, people)
        if group.key != NONE or members:
            engagement.append(engagement_figures(group, [people[p] for p in sorted(members)], facts))
    return Figures(outcomes, engagement)
