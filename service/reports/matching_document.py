"""The matching report as a document: the figures after small-cell suppression, with the same policy
as the outcome report (``suppression.toml``, ``policy``, ``document.complementary``)."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, Field

from .compute import PROGRAM
from .document import Count, Figure, PeriodRef, ProgramRef, SuppressionNote, _count, _figure, _share, complementary
from .matching_compute import OVERLAPPING, GroupFigures
from .matching_fit import WeightSuggestion
from .policy import Policy

TITLE = "Matching evidence report"


class MatchingRow(BaseModel):
    group_by: str = Field(
        description="program, a match factor (lived_experience, language, preferences, "
        "continuity, availability, score_band, assignment) or a participant group "
        "(participant_language, participant_state, age_band, lived_experience_wanted)."
    )
    group: str
    group_label: str
    assignments: Count = Field(description="Referrals assigned through matching on a day in the period.")
    participants: Count = Field(description="Distinct participants of those assignments.")
    mean_score: Figure = Field(description="Mean match score of the chosen specialist at assignment.")
    top_match_share: Figure = Field(description="Share of assignments that took the top match (no override).")
    followed_30: Count = Field(description="Assignments at least 30 days before the end of the period.")
    mean_sessions_30: Figure = Field(
        description="Of them, mean finished sessions with the specialist in the first 30 days."
    )
    retention_30_share: Figure = Field(description="Of them, share with a finished session 30 or more days after.")
    followed_90: Count
    mean_sessions_90: Figure
    retention_90_share: Figure


class MatchingReport(BaseModel):
    title: str
    program: ProgramRef
    period: PeriodRef
    generated_at: datetime
    suppression: SuppressionNote
    rows: list[MatchingRow]
    suggested_weights: WeightSuggestion


_BASES = {
    "all": ("assignments", "participants", "mean_score", "top_match_share"),
    "30": ("followed_30", "mean_sessions_30", "retention_30_share"),
    "90": ("followed_90", "mean_sessions_90", "retention_90_share"),
}


def _base(f: GroupFigures, base: str) -> int:
    """The participants a set of cells rests on (the suppression base)."""
    if base == "all":
        return f.participants
    return next(c.participants for c in f.cohorts if str(c.days) == base)


def row(f: GroupFigures, policy: Policy) -> MatchingRow:
    values: dict[str, Count | Figure] = {
        "assignments": _count(f.assignments, f.participants, policy),
        "participants": _count(f.participants, f.participants, policy),
        "mean_score": _figure(f.mean_score, f.participants, policy, 2),
        "top_match_share": _share(f.top_matches, f.assignments, policy)
        if f.participants >= policy.threshold
        else policy.marker,
    }
    for c in f.cohorts:
        shown = c.participants >= policy.threshold
        values[f"followed_{c.days}"] = _count(c.assignments, c.participants, policy)
        values[f"mean_sessions_{c.days}"] = _figure(
            c.sessions / c.assignments if c.assignments else None, c.participants, policy, 2
        )
        values[f"retention_{c.days}_share"] = _share(c.retained, c.assignments, policy) if shown else policy.marker
    return MatchingRow(group_by=f.group.by, group=f.group.key, group_label=f.group.label, **values)


def build(
    figures: list[GroupFigures],
    weights: WeightSuggestion,
    policy: Policy,
    program: ProgramRef,
    start: date,
    end: date,
    generated_at: datetime,
) -> MatchingReport:
    rows = [row(f, policy) for f in figures]
    program_row = next(f for f in figures if f.group.by == PROGRAM)
    for by in dict.fromkeys(f.group.by for f in figures if f.group.by != PROGRAM and f.group.by not in OVERLAPPING):
        for base, cells in _BASES.items():
            bases = {f.group.key: _base(f, base) for f in figures if f.group.by == by}
            hidden = complementary(bases, _base(program_row, base), policy)
            for i, f in enumerate(figures):
                if f.group.by == by and f.group.key in hidden:
                    rows[i] = rows[i].model_copy(update=dict.fromkeys(cells, policy.marker))
    return MatchingReport(
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
        rows=rows,
        suggested_weights=weights,
    )
