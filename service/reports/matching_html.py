"""The matching report as one self-contained HTML page (Jinja2, autoescaped), as the outcome report:
charts inline as PNG data URIs (matplotlib on the server), style inline, nothing fetched at view time."""

from __future__ import annotations

from .charts import bar_chart
from .html import _environment, _number, _png
from .matching_compute import FACTOR_GROUPS, PARTICIPANT_GROUPS
from .matching_document import MatchingReport

TEMPLATE = "matching.html.j2"
LABELS = {
    "lived_experience": "Lived-experience concordance",
    "language": "Language",
    "preferences": "Stated preferences (gender, age range)",
    "continuity": "Continuity with a former specialist",
    "availability": "Availability overlap",
    "score_band": "Match score (share of the highest possible)",
    "assignment": "Top match or override",
    "participant_language": "Participant's language",
    "participant_state": "Participant's state",
    "age_band": "Age at assignment",
    "lived_experience_wanted": "Lived experience asked for (a participant may count in several rows)",
}


def charts(report: MatchingReport) -> list[dict[str, str]]:
    """Retention at 90 days by match factor; mean match score by participant group."""
    by_factor = [r for r in report.rows if r.group_by in FACTOR_GROUPS]
    retention = bar_chart(
        "Retained at 90 days, by match factor at assignment",
        [f"{r.group_by}: {r.group_label}" for r in by_factor],
        [_number(r.retention_90_share, 100) for r in by_factor],
        "% of assignments followed 90 days",
    )
    by_group = [r for r in report.rows if r.group_by in PARTICIPANT_GROUPS]
    score = bar_chart(
        "Mean match score, by participant group",
        [f"{r.group_by}: {r.group_label}" for r in by_group],
        [_number(r.mean_score) for r in by_group],
        "points (configured weights)",
    )
    return [
        {"alt": "Bar chart: share retained at 90 days for each group of each match factor", "src": _png(retention)},
        {"alt": "Bar chart: mean match score for each participant group", "src": _png(score)},
    ]


def as_html(report: MatchingReport) -> str:
    template = _environment().get_template(TEMPLATE)
    sections = [
        (title, [(by, LABELS[by], [r for r in report.rows if r.group_by == by]) for by in groups])
        for title, groups in (("By match factor", FACTOR_GROUPS), ("By participant group", PARTICIPANT_GROUPS))
    ]
    program = [r for r in report.rows if r.group_by == "program"]
    return template.render(report=report, charts=charts(report), sections=sections, program=program)
