"""The matching evidence report (issue 19, part 5) for `peerlink report matching` and
``GET /peer/v1/reports/matching``: engagement by match factor and by participant group, small cells
suppressed as in the outcome report, and suggested factor weights beside the configured ones
(shown, never applied).

- ``matching_compute``: the figures from plain facts (pure);
- ``matching_fit``: the suggested weights (logistic regression, ``matching_fit.toml``);
- ``matching_document``: the figures after suppression;
- ``matching_load``: the facts, read through the records layer;
- ``matching_render``: JSON, CSV and the HTML page.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from service.domain.program import Program

from . import matching_compute, matching_load
from .document import ProgramRef
from .matching_compute import MatchFacts
from .matching_document import MatchingReport, build
from .matching_fit import load_fit_policy, suggest
from .policy import load_policy


def compose(facts: MatchFacts, configured: dict[str, float], program: Program, now: datetime) -> MatchingReport:
    """The report from its facts (CPU only: the weight fit runs here). ``configured``: the program's
    weights now, shown beside the suggested ones."""
    followed = matching_compute.follow(facts)
    figures = matching_compute.figures(followed)
    weights = suggest(followed, configured, load_fit_policy())
    ref = ProgramRef(code=program.code, name=program.name)
    return build(figures, weights, load_policy(), ref, facts.period.start, facts.period.end, now)


async def matching_facts(conn: AsyncConnection, program: Program, start: date, end: date) -> MatchFacts:
    return await matching_load.facts(conn, program, start, end)


async def matching_report(
    conn: AsyncConnection,
    program: Program,
    configured: dict[str, float],
    start: date,
    end: date,
    now: datetime,
) -> MatchingReport:
    return compose(await matching_facts(conn, program, start, end), configured, program, now)


load_fit_policy()  # a wrong fit file fails here, when the gateway or the command starts

__all__ = ["MatchingReport", "compose", "matching_facts", "matching_report"]
