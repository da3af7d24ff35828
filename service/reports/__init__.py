"""Program reports: the outcome report (issue 16, part 7) for `peerlink report outcomes` and
``GET /peer/v1/reports/outcomes``.

- ``compute``: the figures from plain facts (pure);
- ``document``: the figures after small-cell suppression (``suppression.toml``, ``policy``);
- ``load``: the facts, read through the records layer;
- ``render``: JSON, CSV and the HTML page (``html``, charts drawn by matplotlib on the server).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from service.domain.errors import BadRequest
from service.domain.instruments import Registry
from service.domain.program import Program

from . import compute, load
from .document import OutcomeReport, ProgramRef, build
from .policy import load_policy

DEFAULT_DAYS = 365
MAX_DAYS = 3660  # ten years: a longer period is a mistake


def period(start: date | None, end: date | None, today: date) -> tuple[date, date]:
    """The report period, both days included: ``end`` defaults to today, ``start`` to a year before it."""
    end = end or today
    if start is None:
        if end - date.min < timedelta(days=DEFAULT_DAYS - 1):
            raise BadRequest("the period would start before the year 1: give 'from' too")
        start = end - timedelta(days=DEFAULT_DAYS - 1)
    if start > end:
        raise BadRequest("the period starts after it ends: 'from' must be on or before 'to'")
    if (end - start).days >= MAX_DAYS:
        raise BadRequest(f"the period is longer than {MAX_DAYS} days")
    return start, end


async def outcome_report(
    conn: AsyncConnection, program: Program, registry: Registry, start: date, end: date, now: datetime
) -> OutcomeReport:
    facts = await load.facts(conn, program, start, end)
    figures = compute.figures(facts, registry)
    return build(figures, load_policy(), ProgramRef(code=program.code, name=program.name), start, end, now)


load_policy()  # a wrong suppression file fails here, when the gateway or the command starts

__all__ = ["OutcomeReport", "outcome_report", "period"]
