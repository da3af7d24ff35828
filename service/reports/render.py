"""The outcome report as JSON and as one flat CSV table holding the same figures."""

from __future__ import annotations

import csv
import io
from typing import Any

import orjson

from .document import OutcomeReport

SECTION_COLUMNS = ["program", "period_from", "period_to", "section"]
OUTCOME_COLUMNS = [
    "group_by",
    "group",
    "group_label",
    "instrument",
    "instrument_title",
    "direction",
    "participants",
    "mean_change",
    "reliable_improvement_share",
    "reliable_deterioration_share",
]
ENGAGEMENT_COLUMNS = [
    "sessions",
    "sessions_per_participant_month",
    "retention_30_cohort",
    "retention_30_share",
    "retention_90_cohort",
    "retention_90_share",
]
COLUMNS = SECTION_COLUMNS + OUTCOME_COLUMNS + ENGAGEMENT_COLUMNS
"""Outcome rows leave the engagement columns empty and the other way round; an empty cell means
"not applicable" (e.g. a share for an instrument without a reliable-change threshold), a suppressed
one says so."""


def as_json(report: OutcomeReport) -> bytes:
    return orjson.dumps(report.model_dump(mode="json", by_alias=True), option=orjson.OPT_INDENT_2)


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> str:
    """A cell's text; a label a spreadsheet would run as a formula (a specialist named "=..." say)
    is quoted with a leading apostrophe (OWASP CSV injection); numbers are written as they are."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return str(value)


def rows(report: OutcomeReport) -> list[dict[str, str]]:
    """The CSV's rows: one per outcome row, then one per engagement row."""
    common = {
        "program": report.program.code,
        "period_from": report.period.from_.isoformat(),
        "period_to": report.period.to.isoformat(),
    }
    found: list[dict[str, str]] = []
    for section, items in (("outcomes", report.outcomes), ("engagement", report.engagement)):
        for item in items:
            values = item.model_dump(mode="json")
            found.append(
                {column: _cell(values.get(column)) for column in COLUMNS if column not in SECTION_COLUMNS}
                | common
                | {"section": section}
            )
    return found


def as_csv(report: OutcomeReport) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows(report))
    return buffer.getvalue()
