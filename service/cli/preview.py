"""`peerlink map` and `peerlink openapi`: documents printed for integrators (the FHIR a stored record
maps to, the app's OpenAPI document)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from service.cli.common import configured_settings


def map_record(
    kind: Annotated[
        str,
        typer.Argument(
            help="program, participant, specialist, care-team (participant id), "
            "encounter, note, referral, goal, consent, assessment or questionnaires (program id)"
        ),
    ],
    record_id: Annotated[str, typer.Argument(help="The record's id (for care-team: the participant's id).")],
    profile: Annotated[str, typer.Option(help="EHR overlay: generic, epic or oracle.")] = "generic",
    program: Annotated[str | None, typer.Option(help="Program code (default PEERLINK_DEFAULT_PROGRAM).")] = None,
) -> None:
    """Print the FHIR JSON a stored record maps to (a preview for integrators)."""
    import orjson

    from service.domain.errors import PeerLinkError
    from service.fhir.render import fhir_resources
    from service.records.programs import get_by_code
    from service.store import Database

    settings = configured_settings()

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


def openapi(
    out: Annotated[Path | None, typer.Option(help="Write to this file instead of stdout.")] = None,
) -> None:
    """Print (or write) the OpenAPI document of the app."""
    from service.cli.openapi import render

    text = render()
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text)
