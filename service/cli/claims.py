"""`peerlink claims ...`: claim readiness of the finished sessions of a period (837P export and
remittance follow later)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

import orjson
import typer

from service.cli.common import configured_settings, fail, with_open_database

claims_app = typer.Typer(
    help="Claims: which sessions are ready to bill, and why the others are not.", no_args_is_help=True
)


def _day(value: str, option: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise fail(f"peerlink claims: {option} must be a date (YYYY-MM-DD)") from None


@claims_app.command("check")
def check(
    from_: Annotated[str, typer.Option("--from", help="First date of service (YYYY-MM-DD).")],
    to: Annotated[str, typer.Option("--to", help="Last date of service, inclusive (YYYY-MM-DD).")],
    payer: Annotated[str | None, typer.Option(help="Only the lines billed to this payer rule set.")] = None,
    program: Annotated[str | None, typer.Option(help="Program code (default PEERLINK_DEFAULT_PROGRAM).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the lines as JSON.")] = False,
) -> None:
    """List each finished session: ready with its units, modifiers, place and charge, or blocked with
    every reason. Exits 1 when any session is blocked."""
    from service.domain.billing import PayerError, load_payers
    from service.records import billing
    from service.records.programs import get_by_code

    first, last = _day(from_, "--from"), _day(to, "--to")
    settings = configured_settings()
    try:
        payers = load_payers(settings.payers_dir)
    except PayerError as error:
        raise fail(f"peerlink claims: {error}") from None

    async def work(database: Any) -> list[Any]:
        async with database.read() as conn:
            found = await get_by_code(conn, program or settings.default_program)
            return await billing.readiness(conn, found, payers, first, last, payer)

    lines = with_open_database(settings, work, prefix="peerlink claims")
    if as_json:
        typer.echo(orjson.dumps([line.model_dump(mode="json") for line in lines], option=orjson.OPT_INDENT_2))
    else:
        for line in lines:
            modifiers = ":".join([line.procedure_code, *line.modifiers])
            charge = f"{line.charge}" if line.charge is not None else "-"
            typer.echo(
                f"{line.date_of_service} session {line.session_id} {line.status.value} payer={line.payer or '-'} "
                f"{modifiers} units={line.units} pos={line.place_of_service} charge={charge}"
            )
            for reason in line.reasons:
                typer.echo(f"    {reason.code}: {reason.message}")
        ready = sum(1 for line in lines if line.status.value == "ready")
        typer.echo(f"{len(lines)} sessions: {ready} ready, {len(lines) - ready} blocked")
    if any(line.status.value == "blocked" for line in lines):
        raise typer.Exit(1)
