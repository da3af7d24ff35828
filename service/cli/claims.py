"""`peerlink claims ...`: claim readiness of the finished sessions of a period, the 837P export, the
payer's 999/835 answers, the claims as they stand, and the program's billing provider fields."""

from __future__ import annotations

from datetime import date
from pathlib import Path
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


def _program_and_payers(program: str | None) -> tuple[Any, Any, str]:
    from service.domain.billing import PayerError, load_payers

    settings = configured_settings()
    try:
        payers = load_payers(settings.payers_dir)
    except PayerError as error:
        raise fail(f"peerlink claims: {error}") from None
    return settings, payers, program or settings.default_program


@claims_app.command("export")
def export(
    payer: Annotated[str, typer.Option(help="The payer rule set, e.g. nc-medicaid.")],
    from_: Annotated[str, typer.Option("--from", help="First date of service (YYYY-MM-DD).")],
    to: Annotated[str, typer.Option("--to", help="Last date of service, inclusive (YYYY-MM-DD).")],
    out: Annotated[Path, typer.Option(help="Where to write the 837P file (it must not exist).")],
    program: Annotated[str | None, typer.Option(help="Program code (default PEERLINK_DEFAULT_PROGRAM).")] = None,
    test: Annotated[bool, typer.Option("--test", help="Mark the interchange as test data (ISA15 T).")] = False,
    check: Annotated[
        bool, typer.Option("--validate/--no-validate", help="Check the file with pyx12 before recording it.")
    ] = True,
) -> None:
    """Write the 837P of the payer's ready sessions not billed yet (changed ones as replacements).
    Nothing is written when nothing can be billed, or when pyx12 finds an error in the file (exit 2,
    with the reasons)."""
    from mappings.x12.validate import validate
    from service.api.peer.claims import disclosure
    from service.audit import write
    from service.domain.errors import BadRequest
    from service.records import claims
    from service.records.programs import get_by_code

    first, last = _day(from_, "--from"), _day(to, "--to")
    if out.exists():
        raise fail(f"peerlink claims: {out} exists; name a new file")
    if not out.parent.is_dir():
        raise fail(f"peerlink claims: the folder {out.parent} does not exist")
    settings, payers, code = _program_and_payers(program)

    temporary = out.with_name(out.name + ".part")

    async def work(database: Any) -> Any:
        try:
            async with database.transaction() as conn:
                found = await get_by_code(conn, code)
                result = await claims.export(conn, found, payers, payer, first, last, usage="T" if test else "P")
                problems = validate(result.text) if check else []
                if problems:
                    raise BadRequest("pyx12 finds the 837P invalid: " + "; ".join(problems[:5]))
                temporary.write_text(result.text, encoding="ascii")
                await write(conn, disclosure(found, result, payers, "peerlink-cli", None))
        except BaseException:
            temporary.unlink(missing_ok=True)  # no claim was recorded: no file either
            raise
        temporary.replace(out)  # the file appears only once its claims are recorded
        return result

    result = with_open_database(settings, work, prefix="peerlink claims")
    for skipped in result.skipped:
        typer.echo(f"    session {skipped.session_id} not billed: {skipped.code}: {skipped.message}")
    replaced = sum(1 for c in result.claims if c.frequency == "7")
    typer.echo(
        f"{out}: interchange {result.interchange}, {len(result.claims)} claims ({replaced} replacements), "
        f"charge {claims.total(result.claims)}"
    )


@claims_app.command("ingest")
def ingest(
    file: Annotated[Path, typer.Argument(help="A 999 acknowledgement or 835 remittance (X12).")],
    program: Annotated[str | None, typer.Option(help="Program code (default PEERLINK_DEFAULT_PROGRAM).")] = None,
) -> None:
    """Record a payer's 999 or 835 against the claims sent; exits 1 when something did not match."""
    from service.records import claims_answers
    from service.records.programs import get_by_code

    try:
        document = file.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as error:
        raise fail(f"peerlink claims: {file} cannot be read as X12 text: {error}") from None
    settings, _payers, code = _program_and_payers(program)

    async def work(database: Any) -> Any:
        async with database.transaction() as conn:
            found = await get_by_code(conn, code)
            return await claims_answers.ingest(conn, found.id, document)

    result = with_open_database(settings, work, prefix="peerlink claims")
    for match in result.matched:
        typer.echo(
            f"{match['claim_number']} line {match['line_control']} session {match['session_id']}: {match['status']}"
        )
    for problem in result.errors:
        typer.echo(f"    segment {problem['segment']} at {problem['position']}: error {problem['code']}")
    for name in result.unmatched:
        typer.echo(f"    unmatched: {name}")
    typer.echo(f"{result.kind}: {len(result.matched)} lines matched, {len(result.unmatched)} unmatched")
    if result.unmatched:
        raise typer.Exit(1)


@claims_app.command("status")
def status(
    from_: Annotated[str, typer.Option("--from", help="First date of service (YYYY-MM-DD).")],
    to: Annotated[str, typer.Option("--to", help="Last date of service, inclusive (YYYY-MM-DD).")],
    payer: Annotated[str | None, typer.Option(help="Only this payer's claims.")] = None,
    program: Annotated[str | None, typer.Option(help="Program code (default PEERLINK_DEFAULT_PROGRAM).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the claims as JSON.")] = False,
) -> None:
    """Each claim: charge, paid, adjusted (CARC/RARC codes) and outstanding, and the totals."""
    from decimal import Decimal

    from service.records import claims_answers
    from service.records.programs import get_by_code

    first, last = _day(from_, "--from"), _day(to, "--to")
    settings, _payers, code = _program_and_payers(program)

    async def work(database: Any) -> list[dict[str, Any]]:
        async with database.read() as conn:
            found = await get_by_code(conn, code)
            return await claims_answers.claims(conn, found.id, first, last, payer)

    items = with_open_database(settings, work, prefix="peerlink claims")
    if as_json:
        typer.echo(orjson.dumps(items, default=str, option=orjson.OPT_INDENT_2))
        return
    for i in items:
        codes = ",".join(i["adjustment_codes"]) or "-"
        replaced = f" replaced by {i['replaced_by']}" if i["replaced_by"] else ""
        typer.echo(
            f"{i['service_date']} {i['claim_number']} session {i['session_id']} {i['status']}{replaced} "
            f"charge={i['charge']} paid={i['paid']} adjusted={i['adjusted']} ({codes}) outstanding={i['outstanding']}"
        )
    current = [i for i in items if i["replaced_by"] is None]
    owed = sum((i["outstanding"] for i in current), Decimal(0))
    paid = sum((i["paid"] for i in current), Decimal(0))
    typer.echo(f"{len(current)} sessions billed: paid {paid}, outstanding {owed}")


@claims_app.command("provider")
def provider(
    npi: Annotated[str | None, typer.Option(help="The program's billing NPI.")] = None,
    taxonomy: Annotated[str | None, typer.Option(help="Billing taxonomy, e.g. 251S00000X.")] = None,
    tax_id: Annotated[str | None, typer.Option("--tax-id", help="EIN, 9 digits.")] = None,
    line: Annotated[str | None, typer.Option(help="Street address line.")] = None,
    city: Annotated[str | None, typer.Option()] = None,
    state: Annotated[str | None, typer.Option()] = None,
    postal_code: Annotated[str | None, typer.Option("--zip", help="ZIP+4, e.g. 27601-1234.")] = None,
    program: Annotated[str | None, typer.Option(help="Program code (default PEERLINK_DEFAULT_PROGRAM).")] = None,
) -> None:
    """Set (or, with no option, show) the program's billing provider fields."""
    from pydantic import ValidationError

    from service.api.peer.billing import provider_record
    from service.audit import write
    from service.domain.program import BillingProviderFields
    from service.records.billing_provider import set_billing
    from service.records.programs import get_by_code

    address = None
    if any(v is not None for v in (line, city, state, postal_code)):
        address = {"line": [line] if line else [], "city": city, "state": state, "postal_code": postal_code}
    try:
        fields = BillingProviderFields.model_validate(
            {"npi": npi, "taxonomy": taxonomy, "tax_id": tax_id, "address": address}
        )
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        raise fail(f"peerlink claims: {problems}") from None
    settings, _payers, code = _program_and_payers(program)

    async def work(database: Any) -> Any:
        async with database.transaction() as conn:
            found = await get_by_code(conn, code)
            if not fields.model_dump(exclude_none=True):
                return found
            updated = await set_billing(conn, found, fields)
            await write(conn, provider_record(None, None, found.id, fields))
            return updated

    found = with_open_database(settings, work, prefix="peerlink claims")
    shown = found.model_dump(mode="json", include={"npi", "taxonomy", "tax_id", "address"})
    typer.echo(orjson.dumps(shown, option=orjson.OPT_INDENT_2))
