"""`peerlink worker` and `peerlink deadletters ...`: the outbox from the command line (the admin API
offers the dead letters too)."""

from __future__ import annotations

import asyncio
import signal
from datetime import UTC, datetime
from typing import Annotated

import orjson
import typer

from service.cli.common import with_database
from service.settings import get_settings

deadletters_app = typer.Typer(help="Changes an EHR would not take (dead letters).", no_args_is_help=True)


def worker(
    once: Annotated[
        bool, typer.Option("--once", help="Deliver what is due and run queued exports, then exit.")
    ] = False,
) -> None:
    """Run the outbox worker: deliver queued changes to EHRs, poll for referrals, run bulk exports.
    SIGTERM stops it cleanly (what it holds goes back to the queue)."""
    from service.bulk.runner import ExportRunner
    from service.exchange.worker import Worker
    from service.heap import freeze_heap
    from service.logs import configure_logging
    from service.store import Database

    settings = get_settings()
    configure_logging(settings.log_level, json=settings.log_json)
    freeze_heap()  # the modules' long-lived objects out of the collector's full scans, as `peerlink serve`

    async def run() -> None:
        database = Database(settings.database_url)
        job = Worker(database, settings)
        try:
            if once:
                delivered = await job.drain()
                typer.echo(f"{delivered} change(s) handled")
                typer.echo(f"{await ExportRunner(database, settings).drain()} export(s) run")
                return
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, stop.set)
            await asyncio.gather(job.run(stop), ExportRunner(database, settings).run(stop))
        finally:
            await database.dispose()

    asyncio.run(run())


@deadletters_app.command("list")
def deadletters_list(
    connection: Annotated[str | None, typer.Option(help="Only this connection.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of a table.")] = False,
) -> None:
    """Changes given up on, with the reason and what the EHR answered (status, OperationOutcome)."""
    from service.exchange import outbox

    rows = with_database(get_settings(), lambda conn: outbox.dead_letters(conn, connection))
    if as_json:
        typer.echo(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode())
        return
    for row in rows:
        said = " ".join(str(x) for x in (row["ehr_status"], row["ehr_outcome"]) if x)
        typer.echo(
            f"{row['id']}\t{row['connection']}\t{row['kind']}/{row['record_id']}\t{row['reason']}"
            + (f"\tEHR: {said}" if said else "")
        )
    typer.echo(f"{len(rows)} dead letter(s)")


@deadletters_app.command("replay")
def deadletters_replay(
    ids: Annotated[list[int] | None, typer.Argument(help="Dead letter ids (default: all).")] = None,
    connection: Annotated[str | None, typer.Option(help="Only this connection.")] = None,
) -> None:
    """Queue dead letters again (after the EHR or the record was fixed)."""
    from service.exchange import outbox

    count = with_database(get_settings(), lambda conn: outbox.replay(conn, ids, connection, datetime.now(UTC)))
    typer.echo(f"{count} change(s) queued again")
