"""The outcome report as one self-contained HTML page (Jinja2, autoescaped): the charts are inline
PNG images (data: URIs), the style is inline; nothing is fetched when it is viewed."""

from __future__ import annotations

import base64
from functools import cache
from typing import Any

from jinja2 import Environment, PackageLoader

from service.domain.instruments import Direction

from .charts import bar_chart
from .compute import DAYS_PER_MONTH, PROGRAM, RETENTION_DAYS
from .document import OutcomeReport
from .policy import MARKER, load_policy

TEMPLATE = "outcomes.html.j2"
_BETTER = {Direction.HIGHER_IS_WORSE: "lower is better", Direction.HIGHER_IS_BETTER: "higher is better"}


@cache
def _environment() -> Environment:
    environment = Environment(loader=PackageLoader("service.reports", "templates"), autoescape=True)
    environment.filters["cell"] = _cell
    return environment


def _cell(value: Any, kind: str = "count") -> str:
    """How a cell reads in the page: suppressed, not applicable, a count, a figure or a percentage."""
    if value is None:
        return "n/a"
    if value == MARKER:
        return "suppressed"
    if kind == "share":
        return f"{100 * float(value):.1f}%"
    if kind == "signed":
        return f"{float(value):+.2f}"
    return str(value)


def _number(value: Any, scale: float = 1.0) -> float | None:
    return None if value is None or value == MARKER else round(float(value) * scale, 2)


def _png(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def charts(report: OutcomeReport) -> list[dict[str, str]]:
    """(alt text, data URI) of each chart: change by instrument, sessions by modality, retention."""
    overall = [r for r in report.outcomes if r.group_by == PROGRAM]
    change = bar_chart(
        "Mean change from first to last assessment in the period",
        [f"{r.instrument.upper()} ({_BETTER[r.direction]})" for r in overall],
        [_number(r.mean_change) for r in overall],
        "points",
    )
    by_modality = [r for r in report.engagement if r.group_by in (PROGRAM, "modality")]
    sessions = bar_chart(
        "Sessions per participant per month",
        [r.group_label if r.group_by == PROGRAM else f"Mainly {r.group_label.lower()}" for r in by_modality],
        [_number(r.sessions_per_participant_month) for r in by_modality],
        "sessions per participant-month",
    )
    program = next(r for r in report.engagement if r.group_by == PROGRAM)
    retention = bar_chart(
        "Retention after intake (all participants)",
        [f"{days} days" for days in RETENTION_DAYS],
        [_number(program.retention_30_share, 100), _number(program.retention_90_share, 100)],
        "% of the cohort with a session that many days after intake",
    )
    return [
        {"alt": "Bar chart: mean change from first to last assessment, per instrument", "src": _png(change)},
        {"alt": "Bar chart: sessions per participant per month, by main session modality", "src": _png(sessions)},
        {"alt": "Bar chart: share of participants retained at 30 and 90 days", "src": _png(retention)},
    ]


def as_html(report: OutcomeReport) -> str:
    template = _environment().get_template(TEMPLATE)
    return template.render(
        report=report,
        charts=charts(report),
        policy=load_policy(),
        days_per_month=DAYS_PER_MONTH,
        breakdowns=[("modality", "By main session modality"), ("specialist", "By main peer specialist")],
    )
