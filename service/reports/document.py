"""The outcome report as a document: the figures after small-cell suppression (``suppression.toml``).

A suppressed cell holds the policy's marker ("suppressed"), never 0 or an empty value, in the JSON,
the CSV and the HTML alike.
"""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, ConfigDict, Field

from service.domain.instruments import Direction

from .compute import PROGRAM, EngagementFigures, Figures, OutcomeFigures
from .policy import Policy, Suppressed

Count = int | Suppressed
Figure = float | Suppressed

TITLE = "Program outcome report"


class ProgramRef(BaseModel):
    code: str
    name: str


class PeriodRef(BaseModel):
    from_: date = Field(alias="from", serialization_alias="from")
    to: date

    model_config = ConfigDict(populate_by_name=True)


class SuppressionNote(BaseModel):
    threshold: int = Field(description="Figures based on fewer participants than this are suppressed.")
    marker: Suppressed
    suppress_small_numerators: bool
    source: str


class OutcomeRow(BaseModel):
    group_by: str = Field(description="program, modality or specialist.")
    group: str = Field(description="all, a modality, a specialist id, or none (no session in the period).")
    group_label: str
    instrument: str
    instrument_title: str
    direction: Direction
    participants: Count = Field(description="Participants with two or more standing assessments in the period.")
    mean_change: Figure = Field(description="Mean of (last total - first total) in the period, in points.")
    reliable_improvement_share: Figure | None = Field(
        description="None: the instrument has no reliable-change threshold."
    )
    reliable_deterioration_share: Figure | None


class EngagementRow(BaseModel):
    group_by: str
    group: str
    group_label: str
    participants: Count = Field(description="Participants served: a finished session, or intake, in the period.")
    sessions: Count = Field(description="Their finished sessions in the period.")
    sessions_per_participant_month: Figure
    retention_30_cohort: Count = Field(description="Intake in the period at least 30 days before its end.")
    retention_30_share: Figure = Field(description="Of them, with a finished session 30 or more days after intake.")
    retention_90_cohort: Count
    retention_90_share: Figure


class OutcomeReport(BaseModel):
    title: str
    program: ProgramRef
    period: PeriodRef
    generated_at: datetime
    suppression: SuppressionNote
    outcomes: list[OutcomeRow]
    engagement: list[EngagementRow]


def _count(n: int, base: int, policy: Policy) -> Count:
    return policy.marker if base < policy.threshold else n


def _figure(value: float | None, base: int, policy: Policy, digits: int) -> Figure:
    if base < policy.threshold or value is None:
        return policy.marker
    return round(value, digits)


def _share(part: int, base: int, policy: Policy) -> Figure:
    """part/base, unless the base is small or (with suppress_small_numerators) the share gives away
    a count of 1 to threshold-1 participants, counted in or left out."""
    if base < policy.threshold or base == 0:
        return policy.marker
    if policy.suppress_small_numerators and (policy.small(part) or policy.small(base - part)):
        return policy.marker
    return round(part / base, 3)


def outcome_row(f: OutcomeFigures, policy: Policy) -> OutcomeRow:
    n = f.participants
    improved: Figure | None = None
    deteriorated: Figure | None = None
    if f.threshold_known:
        improved, deteriorated = _share(f.improved, n, policy), _share(f.deteriorated, n, policy)
        rest = n - f.improved - f.deteriorated
        both = improved != policy.marker and deteriorated != policy.marker
        if both and policy.suppress_small_numerators and policy.small(rest):
            deteriorated = policy.marker  # else the "no reliable change" count follows by subtraction
    return OutcomeRow(
        group_by=f.group.by,
        group=f.group.key,
        group_label=f.group.label,
        instrument=f.instrument,
        instrument_title=f.title,
        direction=f.direction,
        participants=_count(n, n, policy),
        mean_change=_figure(f.mean_change, n, policy, 2),
        reliable_improvement_share=improved,
        reliable_deterioration_share=deteriorated,
    )


def engagement_row(f: EngagementFigures, policy: Policy) -> EngagementRow:
    n = f.participants
    r30, r90 = f.retention
    return EngagementRow(
        group_by=f.group.by,
        group=f.group.key,
        group_label=f.group.label,
        participants=_count(n, n, policy),
        sessions=_count(f.sessions, n, policy),
        sessions_per_participant_month=_figure(f.sessions_per_participant_month, n, policy, 2),
        retention_30_cohort=_count(r30.cohort, r30.cohort, policy),
        retention_30_share=_share(r30.retained, r30.cohort, policy),
        retention_90_cohort=_count(r90.cohort, r90.cohort, policy),
        retention_90_share=_share(r90.retained, r90.cohort, policy),
    )


def complementary(bases: dict[str, int], total: int, policy: Policy) -> set[str]:
    """The groups of one breakdown to suppress: the small ones, then the smallest shown ones while the
    suppressed groups together hold 1 to threshold-1 participants (the program row minus the shown
    groups would give that number away)."""
    hidden = {key for key, n in bases.items() if n < policy.threshold}
    while True:
        shown = sorted((n, key) for key, n in bases.items() if key not in hidden)
        if not shown or not policy.small(total - sum(n for n, _ in shown)):
            return hidden
        hidden.add(shown[0][1])


def _hide_outcomes(row: OutcomeRow, policy: Policy) -> OutcomeRow:
    marker = policy.marker
    return row.model_copy(
        update={
            "participants": marker,
            "mean_change": marker,
            "reliable_improvement_share": None if row.reliable_improvement_share is None else marker,
            "reliable_deterioration_share": None if row.reliable_deterioration_share is None else marker,
        }
    )


_ENGAGEMENT_BASES = {
    "participants": ("participants", "sessions", "sessions_per_participant_month"),
    "retention_30": ("retention_30_cohort", "retention_30_share"),
    "retention_90": ("retention_90_cohort", "retention_90_share"),
}


def _engagement_base(f: EngagementFigures, base: str) -> int:
    if base == "participants":
        return f.participants
    return next(r.cohort for r in f.retention if f"retention_{r.days}" == base)


def build(
    figures: Figures, policy: Policy, program: ProgramRef, start: date, end: date, generated_at: datetime
) -> OutcomeReport:
    outcomes = [outcome_row(f, policy) for f in figures.outcomes]
    engagement = [engagement_row(f, policy) for f in figures.engagement]
    for by in ("modality", "specialist"):
        for instrument in sorted({f.instrument for f in figures.outcomes}):
            rows = [f for f in figures.outcomes if f.instrument == instrument]
            total = next(f.participants for f in rows if f.group.by == PROGRAM)
            hidden = complementary({f.group.key: f.participants for f in rows if f.group.by == by}, total, policy)
            for i, f in enumerate(figures.outcomes):
                if f.instrument == instrument and f.group.by == by and f.group.key in hidden:
                    outcomes[i] = _hide_outcomes(outcomes[i], policy)
        for base, cells in _ENGAGEMENT_BASES.items():
            total = next(_engagement_base(f, base) for f in figures.engagement if f.group.by == PROGRAM)
            bases = {f.group.key: _engagement_base(f, base) for f in figures.engagement if f.group.by == by}
            hidden = complementary(bases, total, policy)
            for i, e in enumerate(figures.engagement):
                if e.group.by == by and e.group.key in hidden:
                    engagement[i] = engagement[i].model_copy(update=dict.fromkeys(cells, policy.marker))
    return OutcomeReport(
        title=TITLE,
        program=program,
        period=PeriodRef(from_=start, to=end),
        generated_at=generated_at,
        suppression=SuppressionNote(
            threshold=policy.threshold,
            marker=policy.marker,
            suppress_small_numerators=policy.suppress_small_numerators,
            source=policy.source,
        ),
        outcomes=outcomes,
        engagement=engagement,
    )


__all__ = ["EngagementRow", "OutcomeReport", "OutcomeRow", "build", "complementary"]
