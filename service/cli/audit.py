"""`peerlink audit ...`: verify the chain, archive old records, account for disclosures."""

from __future__ import annotations

import getpass
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, TypeVar

import orjson
import typer

from service.cli.common import fail, with_open_database
from service.settings import Settings, get_settings

T = TypeVar("T")
audit_app = typer.Typer(
    help="The audit log: verify its hash chain, archive old records, account for disclosures.", no_args_is_help=True
)
DEFAULT_ARCHIVE_DIR = Path("var/audit-archive")
DEFAULT_ARCHIVE_AFTER_DAYS = 365


def _archive_dir(settings: Settings) -> Path:
    return Path(getattr(settings, "audit_archive_dir", DEFAULT_ARCHIVE_DIR))


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"[:100]
    except (KeyError, OSError):
        return "cli"


def _run(settings: Settings, work: Callable[[Any], Awaitable[T]]) -> T:
    return with_open_database(settings, work, prefix="peerlink audit")


@audit_app.command("verify")
def verify(
    archive: Annotated[
        Path | None, typer.Option("--archive", help="Also verify the archived NDJSON files in this folder.")
    ] = None,
    head: Annotated[
        str | None,
        typer.Option(help="SEQ:HASH printed by an earlier verify: fails if that record is gone or changed."),
    ] = None,
) -> None:
    """Walk the hash chain; exit 1 naming the first record changed, removed or inserted."""
    from service.audit.verify import parse_head
    from service.audit.verify import verify as run_verify

    settings = get_settings()
    try:
        noted = parse_head(head) if head else None
    except ValueError as error:
        raise fail(str(error)) from None
    if archive is not None and not archive.is_dir():
        raise fail(f"no archive folder {archive}")
    report = _run(settings, lambda database: run_verify(database, archive_dir=archive, head=noted))
    for note in report.notes:
        typer.echo(f"note: {note}", err=True)
    if not report.ok:
        typer.echo(report.summary(), err=True)
        raise typer.Exit(1)
    typer.echo(report.summary())


@audit_app.command("archive")
def archive(
    older_than: Annotated[
        int | None,
        typer.Option(
            "--older-than", help="Days; default PEERLINK_AUDIT_ARCHIVE_AFTER_DAYS (365).", min=0, show_default=False
        ),
    ] = None,
    directory: Annotated[
        Path | None, typer.Option("--dir", help="Default PEERLINK_AUDIT_ARCHIVE_DIR (var/audit-archive).")
    ] = None,
) -> None:
    """Move records older than the horizon to an NDJSON file; the chain continues from its anchor."""
    from service.audit.archive import ArchiveRefused, archive_and_record

    settings = get_settings()
    days = older_than if older_than is not None else getattr(settings, "audit_archive_after_days", None)
    before = datetime.now(UTC) - timedelta(days=DEFAULT_ARCHIVE_AFTER_DAYS if days is None else int(days))
    target = directory or _archive_dir(settings)
    try:
        result = _run(settings, lambda database: archive_and_record(database, target, before, actor=_actor()))
    except ArchiveRefused as error:
        raise fail(f"peerlink audit archive: {error}", 1) from None
    if result is None:
        typer.echo(f"nothing to archive (no record before {before:%Y-%m-%d %H:%M} UTC but the newest)")
        return
    typer.echo(
        f"archived records {result.first_seq}..{result.last_seq} ({result.count}) to {result.file}; "
        f"anchor {result.anchor}"
    )


@audit_app.command("disclosures")
def disclosures(
    participant: Annotated[str, typer.Argument(help="The participant's id.")],
    from_: Annotated[str | None, typer.Option("--from", help="YYYY-MM-DD or dateTime; default six years ago.")] = None,
    to: Annotated[str | None, typer.Option("--to", help="YYYY-MM-DD (inclusive) or dateTime; default now.")] = None,
    format_: Annotated[str, typer.Option("--format", help="json or csv.")] = "json",
    program: Annotated[str | None, typer.Option(help="Program code (default PEERLINK_DEFAULT_PROGRAM).")] = None,
    archive: Annotated[
        Path | None, typer.Option("--archive", help="Archive folder to include (default PEERLINK_AUDIT_ARCHIVE_DIR).")
    ] = None,
) -> None:
    """The accounting of disclosures of a participant's records, as a privacy officer hands it out."""
    from service.audit import AuditRecord, write
    from service.audit import disclosures as accounting
    from service.domain.errors import BadRequest
    from service.records.programs import get_by_code

    settings = get_settings()
    if format_ not in ("json", "csv"):
        raise fail("--format is json or csv")
    try:
        start, end = accounting.period(accounting.parse_moment(from_), accounting.parse_moment(to, end=True))
    except BadRequest as error:
        raise fail(error.detail) from None
    folder = archive or _archive_dir(settings)

    async def work(database: Any) -> dict[str, Any]:
        async with database.read() as conn:
            found = await get_by_code(conn, program or settings.default_program)
        document = await accounting.accounting(database, found, participant, start, end, archive_dir=folder)
        record = AuditRecord(
            "admin",
            "disclosure-report",
            "R",
            "0",
            client_id=_actor(),
            program_id=found.id,
            detail={
                "patients": [document["patient_id"]],
                "participant": participant,
                "from": document["from"],
                "to": document["to"],
                "returned": document["count"],
            },
        )
        await write(database, record)
        return document

    document = _run(settings, work)
    if format_ == "csv":
        sys.stdout.write(accounting.to_csv(document))
        return
    typer.echo(orjson.dumps(document, option=orjson.OPT_INDENT_2).decode())
