"""The matching report as JSON and as one flat CSV table holding the same figures: the group rows,
then one row per factor of the suggested weights (section ``weights``)."""

from __future__ import annotations

import csv
import io

import orjson

from .matching_document import MatchingReport, MatchingRow
from .matching_fit import SuggestedWeight
from .render import _cell

SECTION_COLUMNS = ["program", "period_from", "period_to", "section"]
ROW_COLUMNS = list(MatchingRow.model_fields)
WEIGHT_COLUMNS = ["factor", "configured", "coefficient", "std_error", "ci_low", "ci_high", "suggested", "fit_status"]
COLUMNS = SECTION_COLUMNS + ROW_COLUMNS + WEIGHT_COLUMNS


def as_json(report: MatchingReport) -> bytes:
    return orjson.dumps(report.model_dump(mode="json", by_alias=True), option=orjson.OPT_INDENT_2)


def rows(report: MatchingReport) -> list[dict[str, str]]:
    common = {
        "program": report.program.code,
        "period_from": report.period.from_.isoformat(),
        "period_to": report.period.to.isoformat(),
    }
    found = [
        {c: _cell(v) for c, v in r.model_dump(mode="json").items()} | common | {"section": "groups"}
        for r in report.rows
    ]
    fit = report.suggested_weights
    for w in fit.weights:
        values = w.model_dump(mode="json", include=set(SuggestedWeight.model_fields) & set(WEIGHT_COLUMNS))
        found.append(
            {c: _cell(v) for c, v in values.items()} | common | {"section": "weights", "fit_status": fit.status}
        )
    return found


def as_csv(report: MatchingReport) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\r\n", restval="")
    writer.writeheader()
    writer.writerows(rows(report))
    return buffer.getvalue()
