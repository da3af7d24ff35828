"""Program reports: ``GET /peer/v1/reports/outcomes`` (the outcome report as JSON, CSV or HTML) and
``GET /peer/v1/reports/matching`` (the matching evidence report, the same formats).

Aggregates only, with small cells suppressed (service/reports/suppression.toml); producing one is
audited as a query that names no patient.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from service.api import audit_trail
from service.api.access import AccessDep
from service.api.deps import DatabaseDep, ProgramDep
from service.domain.instruments import Registry
from service.domain.matching.config import MatchingConfig
from service.reports import OutcomeReport, outcome_report, period
from service.reports.matching_report import MatchingReport, compose, matching_facts
from service.reports.render import as_csv

router = APIRouter(tags=["report"])
CSV = "text/csv"
HTML = "text/html"


class ReportFormat(StrEnum):
    JSON = "json"
    CSV = "csv"
    HTML = "html"


class ReportQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_: date | None = Field(
        default=None, alias="from", description="First day of the period (YYYY-MM-DD); default a year before `to`."
    )
    to: date | None = Field(default=None, description="Last day of the period, included (YYYY-MM-DD); default today.")
    format: ReportFormat = Field(default=ReportFormat.JSON, description="json, csv (one flat table) or html.")


_TEXT: dict[str, Any] = {"schema": {"type": "string"}}
RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The report: JSON (the schema), CSV (one row per JSON row, the same figures) or a "
        "self-contained HTML page with its charts inline.",
        "content": {CSV: _TEXT, HTML: _TEXT},
    }
}


@router.get(
    "/reports/outcomes",
    response_model=OutcomeReport,
    responses=RESPONSES,
    summary="The program outcome report: outcomes per instrument and engagement, small cells suppressed",
    operation_id="program_outcome_report",
)
async def program_outcome_report(
    request: Request,
    query: Annotated[ReportQuery, Query()],
    program: ProgramDep,
    access: AccessDep,
    database: DatabaseDep,
) -> Any:
    now = datetime.now(UTC)
    start, end = period(query.from_, query.to, now.date())
    registry: Registry = request.app.state.instruments
    async with database.read() as conn:
        report = await outcome_report(conn, program, registry, start, end, now)
    await audit_trail.reading(request, access, program.id, "peer-list", query=request.url.query or None)
    if query.format is ReportFormat.CSV:
        filename = f"outcomes-{program.code}-{start}-{end}.csv"
        return Response(
            as_csv(report),
            media_type=CSV,
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )
    if query.format is ReportFormat.HTML:
        from service.reports.html import as_html  # matplotlib loads on the first page, not at start-up

        return Response(await run_in_threadpool(as_html, report), media_type=HTML)
    return report


@router.get(
    "/reports/matching",
    response_model=MatchingReport,
    responses=RESPONSES,
    summary="The matching evidence report: engagement by match factor and participant group, suggested weights",
    operation_id="program_matching_report",
)
async def program_matching_report(
    request: Request,
    query: Annotated[ReportQuery, Query()],
    program: ProgramDep,
    access: AccessDep,
    database: DatabaseDep,
) -> Any:
    from service.reports import matching_render

    now = datetime.now(UTC)
    start, end = period(query.from_, query.to, now.date())
    config: MatchingConfig = request.app.state.matching
    configured = config.weights_for(program.code).model_dump()
    async with database.read() as conn:
        facts = await matching_facts(conn, program, start, end)
    report = await run_in_threadpool(compose, facts, configured, program, now)  # the weight fit: CPU
    await audit_trail.reading(request, access, program.id, "peer-list", query=request.url.query or None)
    if query.format is ReportFormat.CSV:
        filename = f"matching-{program.code}-{start}-{end}.csv"
        return Response(
            matching_render.as_csv(report),
            media_type=CSV,
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )
    if query.format is ReportFormat.HTML:
        from service.reports.matching_html import as_html

        return Response(await run_in_threadpool(as_html, report), media_type=HTML)
    return report
