"""The `peerlink` command: serve, migrate, seed, openapi."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from service.cli_audit import audit_app
from service.cli_auth import clients_app, ensure_demo_client, keys_app, token
from service.cli_exchange import deadletters_app, ehr_app, worker
from service.cli_up import up
from service.exchange.conformance.command import check
from service.heap import freeze_heap
from service.logs import configure_logging
from service.sandbox.cli import sandbox_app
from service.settings import Settings, get_settings

app = typer.Typer(help="PeerLink: FHIR integration gateway for peer-support programs.", no_args_is_help=True)
app.add_typer(clients_app, name="clients")
app.add_typer(keys_app, name="keys")
app.command("token")(token)
app.add_typer(ehr_app, name="ehr")
app.add_typer(deadletters_app, name="deadletters")
app.command("worker")(worker)
app.add_typer(sandbox_app, name="sandbox")
app.command("check")(check)
app.command("up")(up)
app.add_typer(audit_app, name="audit")


def _settings() -> Settings:
    settings = get_settings()
    configure_logging(settings.log_level, json=settings.log_json)
    return settings


@app.command()
def migrate() -> None:
    """Bring the database schema up to date (Alembic)."""
    from service.store.migrate import upgrade

    settings = _settings()
    upgrade(settings.database_url)
    typer.echo(f"database migrated ({settings.database_url.split(':', 1)[0]})")


@app.command()
def seed() -> None:
    """Load the synthetic demo program (does nothing if it is there already)."""
    from service.seed import seed_demo
    from service.store import Database

    settings = _settings()

    async def run() -> bool:
        database = Database(settings.database_url)
        try:
            async with database.transaction() as conn:
                return await seed_demo(conn) is not None
        finally:
            await database.dispose()

    created = asyncio.run(run())
    typer.echo("demo data seeded" if created else "demo data already present")
    client = ensure_demo_client(settings)
    typer.echo(f"demo client {'registered' if client else 'already registered'}: try  peerlink token")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Listen address (PEERLINK_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port (PEERLINK_PORT).")] = None,
) -> None:
    """Run the gateway (HTTP API) with uvicorn."""
    import uvicorn

    from service.app import create_app

    settings = _settings()
    host = host or settings.host
    port = port or settings.port
    base = f"http://{host}:{port}"
    typer.echo(
        f"PeerLink gateway on {base}\n"
        f"  API docs      {base}/docs\n"
        f"  token         .venv/bin/peerlink token   (the demo client's access token)\n"
        f'  peer API      {base}/peer/v1  (try: curl -H "Authorization: Bearer $(.venv/bin/peerlink token)" '
        f"{base}/peer/v1/participants)\n"
        f"  FHIR base     {base}/fhir  (try: curl {base}/fhir/metadata)\n"
        f"  SMART         {base}/.well-known/smart-configuration\n"
        f"  health        {base}/healthz  {base}/readyz"
    )
    application = create_app(settings)
    freeze_heap()
    uvicorn.run(application, host=host, port=port, log_config=None, access_log=False)


@app.command("map")
def map_record(
    kind: Annotated[
        str,
        typer.Argument(
            help="program, participant, specialist, care-team (participant id), "
            "encounter, note, referral, goal or consent"
        ),
    ],
    record_id: Annotated[str, typer.Argument(help="The record's id (for care-team: the participant's id).")],
    profile: Annotated[str, typer.Option(help="EHR overlay: generic, epic or oracle.")] = "generic",
    program: Annotated[str | None, typer.Option(help="Program code (default PEERLINK_DEFAULT_PROGRAM).")] = None,
) -> None:
    """Print the FHIR JSON a stored record maps to (a preview for integrators)."""
    import orjson

    from service.domain.errors import PeerLinkError
    from service.records.fhir_preview import fhir_resources
    from service.records.programs import get_by_code
    from service.store import Database

    settings = _settings()

    async def run() -> list[dict[str, object]]:
        database = Database(settings.database_url)
        try:
            async with database.transaction() as conn:
                found = await get_by_code(conn, program or settings.default_program)
                return await fhir_resources(conn, found, kind, record_id, profile)
        finally:
            await database.dispose()

    try:
        resources = asyncio.run(run())
    except (PeerLinkError, ValueError) as exc:
        typer.echo(f"peerlink map: {exc}", err=True)
        raise typer.Exit(2) from None
    if len(resources) == 1:
        document: object = resources[0]
    else:
        document = {
            "resourceType": "Bundle",
            "type": "collection",
            "entry": [{"fullUrl": f"urn:uuid:{r['id']}", "resource": r} for r in resources],
        }
    typer.echo(orjson.dumps(document, option=orjson.OPT_INDENT_2).decode())


@app.command()
def openapi(
    out: Annotated[Path | None, typer.Option(help="Write to this file instead of stdout.")] = None,
) -> None:
    """Print (or write) the OpenAPI document of the app."""
    from service.openapi import render

    text = render()
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text)
