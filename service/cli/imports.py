"""`peerlink import FILE --kind KIND [--dry-run]` and `peerlink import-template --kind KIND --format csv|xlsx
--out FILE`: the spreadsheet import from the command line (service.imports), into one program."""

from __future__ import annotations

import getpass
import json
from pathlib import Path
from typing import Any

import typer

from service.cli.common import configured_settings, fail, find_program_id, with_open_database

KIND_HELP = "participants, specialists or sessions (sessions with their notes)"


def import_file(
    file: Path = typer.Argument(..., help="The .csv or .xlsx file (the template's columns, header first)."),
    kind: str = typer.Option(..., "--kind", help=KIND_HELP),
    dry_run: bool = typer.Option(False, "--dry-run", help="Check every row as an import would; write nothing."),
    program: str | None = typer.Option(None, help="Program code (default: the configured default program)."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Import a spreadsheet of participants, peer specialists or sessions: all rows or none.

    Exit status: 0 imported (or a clean dry run), 1 a row has a problem (nothing written; the report
    names row and column), 2 the file or the options cannot be used."""
    from service.imports import KINDS, run_import

    if kind not in KINDS:
        raise fail(f"--kind is one of: {', '.join(KINDS)}")
    try:
        content = file.read_bytes()
    except OSError as error:
        raise fail(f"cannot read {file}: {error.strerror}") from None
    settings = configured_settings()
    actor = f"cli:{getpass.getuser()}"

    async def work(database: Any) -> Any:
        async with database.read() as conn:
            program_id = await find_program_id(conn, program or settings.default_program)
        return await run_import(database, program_id, kind, file.name, content, dry_run=dry_run, actor=actor)

    report = with_open_database(settings, work, prefix="peerlink import")
    if as_json:
        typer.echo(json.dumps(report.as_dict(), indent=1))
    else:
        typer.echo(summary(report))
    if report.problems:
        raise typer.Exit(1)


def summary(report: Any) -> str:
    verb = "would create" if report.dry_run else ("created" if report.applied else "would have created")
    lines = [
        f"{report.kind}: {report.rows} rows read, {verb} {report.created}, "
        f"{report.already_imported} imported before (left as they are)"
    ]
    for problem in report.problems:
        lines.append(f"  row {problem.row}, {problem.column or '(the row)'}: {problem.reason}")
    if report.problems:
        lines.append(f"{len(report.problems)} problem(s): nothing was imported")
    elif report.dry_run:
        lines.append("dry run: nothing was written")
    return "\n".join(lines)


def import_template(
    kind: str = typer.Option(..., "--kind", help=KIND_HELP),
    format_: str = typer.Option("csv", "--format", help="csv or xlsx"),
    out: Path = typer.Option(..., "--out", help="Where to write the template."),
) -> None:
    """Write the import template of a kind: the header row and one example row."""
    from service.imports import FORMATS, KINDS, template_bytes

    if kind not in KINDS:
        raise fail(f"--kind is one of: {', '.join(KINDS)}")
    if format_ not in FORMATS:
        raise fail("--format is csv or xlsx")
    out.write_bytes(template_bytes(kind, format_))
    typer.echo(f"wrote {out}")
