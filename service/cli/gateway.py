"""`peerlink migrate`, `peerlink seed` and `peerlink serve`: the database schema, the demo data and the
gateway process."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from service.cli.auth import ensure_demo_client
from service.cli.common import configured_settings
from service.heap import freeze_heap


def migrate() -> None:
    """Bring the database schema up to date (Alembic)."""
    from service.store.migrate import upgrade

    settings = configured_settings()
    upgrade(settings.database_url)
    typer.echo(f"database migrated ({settings.database_url.split(':', 1)[0]})")


def seed() -> None:
    """Load the synthetic demo program (does nothing if it is there already)."""
    from service.cli.seed import seed_demo
    from service.domain.instruments import load_registry
    from service.store import Database

    settings = configured_settings()
    registry = load_registry(settings.instruments_dir)

    async def run() -> bool:
        database = Database(settings.database_url)
        try:
            async with database.transaction() as conn:
                return await seed_demo(conn, registry=registry) is not None
        finally:
            await database.dispose()

    created = asyncio.run(run())
    typer.echo("demo data seeded" if created else "demo data already present")
    client = ensure_demo_client(settings)
    typer.echo(f"demo client {'registered' if client else 'already registered'}: try  peerlink token")


def serve(
    host: Annotated[str | None, typer.Option(help="Listen address (PEERLINK_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port (PEERLINK_PORT).")] = None,
) -> None:
    """Run the gateway (HTTP API) with uvicorn."""
    import uvicorn

    from service.app import create_app

    settings = configured_settings()
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
