"""`peerlink report outcomes`: the program outcome report (JSON, CSV or a self-contained HTML page),
the same document as ``GET /peer/v1/reports/outcomes``."""

from __future__ import annotations

import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from service.cli.common import fail, with_open_database
from service.settings import get_settings

report_app = typer.Typer(help="Program reports.", no_args_is_help=True)
FORMATS = ("json", "csv", "html")


def _day(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise fail(f"{option} is a day, YYYY-MM-DD") from None


def _period(from_: str | None, to: str | None, format_: str, today: date) -> tuple[date, date]:
    """The report's days, checked with its format (a bad option is a usage error, exit 2)."""
    from service.domain.errors import BadRequest
    from service.reports import period

    if format_ not in FORMATS:
        raise fail("--format is json, csv or html")
    try:
        return period(_day(from_, "--from"), _day(to, "--to"), today)
    except BadRequest as error:
        raise fail(error.detail) from None


def _write(data: bytes, out: Path | None, what: str) -> None:
    """The report on standard output, or in ``out`` with a line on standard error saying so."""
    if out is None:
        sys.stdout.buffer.write(data if data.endswith(b"\n") else data + b"\n")
        sys.stdout.flush()
        return
    out.write_bytes(data)
    typer.echo(f"{what} written to {out}", err=True)


@report_app.command("outcomes")
def outcomes(
    from_: Annotated[
        str | None, typer.Option("--from", help="First day, YYYY-MM-DD (default: a year before --to).")
    ] = None,
    to: Annotated[str | None, typer.Option("--to", help="Last day, included, YYYY-MM-DD (default: today).")] = None,
    format_: Annotated[str, typer.Option("--format", help="json, csv or html.")] = "json",
    out: Annotated[Path | None, typer.Option("--out", help="Write to this file instead of standard output.")] = None,
    program: Annotated[str | None, typer.Option(help="Program code (default PEERLINK_DEFAULT_PROGRAM).")] = None,
) -> None:
    """Outcomes per instrument and engagement, by modality and by specialist, small cells suppressed."""
    from service.domain.instruments import load_registry
    from service.records.programs import get_by_code
    from service.reports import outcome_report
    from service.reports.html import as_html
    from service.reports.render import as_csv, as_json

    settings = get_settings()
    now = datetime.now(UTC)
    start, end = _period(from_, to, format_, now.date())
    registry = load_registry(settings.instruments_dir)

    async def work(database: Any) -> Any:
        async with database.read() as conn:
            found = await get_by_code(conn, program or settings.default_program)
            return await outcome_report(conn, found, registry, start, end, now)

    report = with_open_database(settings, work, prefix="peerlink report")
    if format_ == "json":
        data = as_json(report)
    elif format_ == "csv":
        data = as_csv(report).encode()
    else:
        data = as_html(report).encode()
    _write(data, out, f"outcome report ({format_}, {start} to {end})")


@report_app.command("matching")
def matching(
    from_: Annotated[
        str | None, typer.Option("--from", help="First day, YYYY-MM-DD (default: a year before --to).")
    ] = None,
    to: Annotated[str | None, typer.Option("--to", help="Last day, included, YYYY-MM-DD (default: today).")] = None,
    format_: Annotated[str, typer.Option("--format", help="json, csv or html.")] = "json",
    out: Annotated[Path | None, typer.Option("--out", help="Write to this file instead of standard output.")] = None,
    program: Annotated[str | None, typer.Option(help="Program code (default PEERLINK_DEFAULT_PROGRAM).")] = None,
) -> None:
    """Engagement by match factor and participant group, and suggested weights (never applied)."""
    from service.domain.matching.config import MatchingConfigError, load_config
    from service.records.programs import get_by_code
    from service.reports.matching_html import as_html
    from service.reports.matching_render import as_csv, as_json
    from service.reports.matching_report import compose, matching_facts

    settings = get_settings()
    now = datetime.now(UTC)
    start, end = _period(from_, to, format_, now.date())
    try:
        config = load_config(settings.matching_dir)
    except MatchingConfigError as error:
        raise fail(f"matching configuration: {error}") from None

    async def work(database: Any) -> Any:
        async with database.read() as conn:
            found = await get_by_code(conn, program or settings.default_program)
            return found, await matching_facts(conn, found, start, end)

    found, facts = with_open_database(settings, work, prefix="peerlink report")
    report = compose(facts, config.weights_for(found.code).model_dump(), found, now)
    if format_ == "json":
        data = as_json(report)
    elif format_ == "csv":
        data = as_csv(report).encode()
    else:
        data = as_html(report).encode()
    _write(data, out, f"matching report ({format_}, {start} to {end})")
