"""`peerlink ehr ...`: EHR connections from the command line (the admin API offers the same); the
worker and the dead letters are ``service.cli.outbox``'s."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from service.cli.common import fail, find_program_id, with_database
from service.records.push_kinds import PUSH_KINDS
from service.settings import get_settings

ehr_app = typer.Typer(help="Connections to hospital EHRs.", no_args_is_help=True)
PUSH_HELP = f"What to push, comma-separated: {','.join(PUSH_KINDS)}."


def _fields(**given: Any) -> dict[str, Any]:
    return {k: v for k, v in given.items() if v is not None}


@ehr_app.command("add")
def ehr_add(
    name: Annotated[str, typer.Argument(help="A name for the connection, e.g. riverside-epic.")],
    base_url: Annotated[str, typer.Option(help="The EHR's FHIR base URL.")],
    client_id: Annotated[str, typer.Option(help="PeerLink's client id at the EHR.")],
    org: Annotated[str, typer.Option(help="The hospital's identifier system|value, or its NPI (consents name it).")],
    key: Annotated[Path | None, typer.Option(help="PeerLink's private key for this EHR (PEM file).")] = None,
    key_env: Annotated[str | None, typer.Option(help="Or: an environment variable holding the PEM.")] = None,
    kid: Annotated[str | None, typer.Option(help="Key id registered at the EHR (default: thumbprint).")] = None,
    alg: Annotated[str, typer.Option(help="RS384 or ES384.")] = "RS384",
    scopes: Annotated[str | None, typer.Option(help="Scopes to ask the EHR for.")] = None,
    profile: Annotated[str, typer.Option(help="Mapping overlay: generic, epic or oracle.")] = "generic",
    push: Annotated[str, typer.Option(help=PUSH_HELP)] = "encounters,notes",
    poll_referrals: Annotated[bool, typer.Option("--poll-referrals", help="Poll the EHR for referrals.")] = False,
    poll_seconds: Annotated[int, typer.Option(help="Seconds between polls (900..86400).")] = 3600,
    task_owner: Annotated[
        str | None, typer.Option(help="Task.owner of the program's Tasks at the EHR, e.g. Organization/123.")
    ] = None,
    rate: Annotated[int, typer.Option(help="Requests per second at most.")] = 20,
    backfill: Annotated[bool, typer.Option("--backfill", help="Queue every existing record it pushes.")] = False,
    program: Annotated[str | None, typer.Option(help="Program code (default PEERLINK_DEFAULT_PROGRAM).")] = None,
) -> None:
    """Add an EHR connection (the private key stays in its file or variable; only where it is is stored)."""
    from service.exchange import connections, outbox
    from service.records.programs import get_by_code

    settings = get_settings()
    fields = _fields(
        name=name,
        base_url=base_url,
        client_id=client_id,
        organization=org,
        key_file=str(key.resolve()) if key else None,
        key_env=key_env,
        kid=kid,
        alg=alg,
        scopes=scopes,
        profile=profile,
        push=push.split(","),
        poll_referrals=poll_referrals,
        poll_seconds=poll_seconds,
        task_owner=task_owner,
        rate_per_second=rate,
    )

    async def work(conn: Any) -> tuple[Any, int]:
        found = await get_by_code(conn, program or settings.default_program)
        created = await connections.add(conn, found.id, fields, datetime.now(UTC))
        queued = await outbox.backfill(conn, found, created, datetime.now(UTC)) if backfill else 0
        return created, queued

    created, queued = with_database(settings, work)
    typer.echo(f"connection {created.name} added ({created.base_url}; pushes {','.join(created.push)})")
    _warn_scopes(created)
    if backfill:
        typer.echo(f"backfill: {queued} change(s) queued")


def _warn_scopes(connection: Any) -> None:
    """On stderr: the scopes what the connection pushes and polls needs that it does not ask for."""
    lacking = connection.missing_scopes()
    if lacking:
        typer.echo(
            f"warning: the scopes of {connection.name} do not cover what it pushes and polls; missing: "
            f"{' '.join(lacking)} (deliveries of those will be refused; `peerlink ehr test {connection.name}` "
            "checks what the EHR grants)",
            err=True,
        )


@ehr_app.command("import")
def ehr_import(
    file: Annotated[Path, typer.Argument(help="YAML: a list of connections (the fields of `ehr add`).")],
    program: Annotated[str | None, typer.Option(help="Program code.")] = None,
) -> None:
    """Add the connections a YAML file describes (existing names are left alone)."""
    import yaml

    from service.exchange import connections

    settings = get_settings()
    try:
        document = yaml.safe_load(file.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise fail(f"cannot read {file}: {error}") from None
    entries = document.get("connections", document) if isinstance(document, dict) else document
    if not isinstance(entries, list):
        raise fail("the file must hold a list of connections (or {connections: [...]})")

    async def work(conn: Any) -> list[Any]:
        program_id = await find_program_id(conn, program or settings.default_program)
        added = []
        for entry in entries:
            if await connections.find(conn, str(entry.get("name"))) is None:
                added.append(await connections.add(conn, program_id, dict(entry), datetime.now(UTC)))
        return added

    added = with_database(settings, work)
    typer.echo(f"{len(added)} connection(s) added: {', '.join(c.name for c in added) or '-'}")
    for connection in added:
        _warn_scopes(connection)


@ehr_app.command("list")
def ehr_list() -> None:
    """List EHR connections (where each key is, never the key)."""
    from service.exchange import connections

    for connection in with_database(get_settings(), connections.list_all):
        state = "enabled" if connection.enabled else "disabled"
        poll = f"poll every {connection.poll_seconds}s" if connection.poll_referrals else "no polling"
        refused = connection.bundles_refused_at
        writes = "bundles"
        if refused is not None:
            when = refused.isoformat(timespec="seconds")
            writes = f"single writes: Bundles refused {when} ({connection.bundles_refused_reason})"
        typer.echo(
            f"{connection.name}\t{state}\t{connection.base_url}\t{connection.profile}\t"
            f"push {','.join(connection.push)}\t{poll}\t{writes}"
        )


@ehr_app.command("backfill")
def ehr_backfill(name: Annotated[str, typer.Argument()]) -> None:
    """Queue every existing record the connection pushes; what the EHR holds unchanged is not resent."""
    from service.exchange import connections, outbox
    from service.store import RecordRepository
    from service.store import kinds as k

    async def work(conn: Any) -> int:
        connection = await connections.get(conn, name)
        program = await RecordRepository(k.PROGRAMS).get(conn, None, connection.program_id)
        return await outbox.backfill(conn, program, connection, datetime.now(UTC))

    typer.echo(f"backfill: {with_database(get_settings(), work)} change(s) queued")


def _lifecycle_actor() -> Any:
    """The audit's actor of a change made from the command line: cli:<user>."""
    import getpass

    from service.exchange.lifecycle import Actor

    try:
        return Actor(f"cli:{getpass.getuser()}"[:100])
    except (KeyError, OSError):
        return Actor("cli")


@ehr_app.command("update")
def ehr_update(
    name: Annotated[str, typer.Argument(help="The connection to change (its name stays).")],
    base_url: Annotated[str | None, typer.Option(help="The EHR's FHIR base URL.")] = None,
    client_id: Annotated[str | None, typer.Option(help="PeerLink's client id at the EHR.")] = None,
    org: Annotated[str | None, typer.Option(help="The hospital's identifier system|value, or its NPI.")] = None,
    key: Annotated[Path | None, typer.Option(help="A new private key file (PEM), e.g. after a rotation.")] = None,
    key_env: Annotated[str | None, typer.Option(help="Or: an environment variable holding the PEM.")] = None,
    kid: Annotated[str | None, typer.Option(help='Key id registered at the EHR ("" for the thumbprint).')] = None,
    alg: Annotated[str | None, typer.Option(help="RS384 or ES384.")] = None,
    scopes: Annotated[str | None, typer.Option(help="Scopes to ask the EHR for.")] = None,
    profile: Annotated[str | None, typer.Option(help="Mapping overlay: generic, epic or oracle.")] = None,
    push: Annotated[str | None, typer.Option(help=PUSH_HELP)] = None,
    poll_referrals: Annotated[
        bool | None, typer.Option("--poll-referrals/--no-poll-referrals", help="Poll the EHR for referrals.")
    ] = None,
    poll_seconds: Annotated[int | None, typer.Option(help="Seconds between polls (900..86400).")] = None,
    task_owner: Annotated[str | None, typer.Option(help="Task.owner of the program's Tasks at the EHR.")] = None,
    rate: Annotated[int | None, typer.Option(help="Requests per second at most (1..1000).")] = None,
    retry_bundles: Annotated[
        bool, typer.Option("--retry-bundles", help="Try transaction Bundles again after the EHR refused one.")
    ] = False,
) -> None:
    """Change a connection's settings (a new URL, a rotated key, ...); what is queued for it and what
    the EHR holds are kept. Workers pick the change up at their next delivery."""
    from service.exchange import lifecycle

    changes = _fields(
        base_url=base_url,
        client_id=client_id,
        organization=org,
        key_file=str(key.resolve()) if key else None,
        key_env=key_env,
        kid=kid,
        alg=alg,
        scopes=scopes,
        profile=profile,
        push=push.split(",") if push is not None else None,
        poll_referrals=poll_referrals,
        poll_seconds=poll_seconds,
        task_owner=task_owner,
        rate_per_second=rate,
    )
    if not changes and not retry_bundles:
        raise fail("nothing to change: give at least one option (see --help)")
    actor = _lifecycle_actor()

    async def work(conn: Any) -> Any:
        now = datetime.now(UTC)
        updated = await lifecycle.change(conn, name, changes, now, actor) if changes else None
        return await lifecycle.retry_bundles(conn, name, now, actor) if retry_bundles else updated

    updated = with_database(get_settings(), work)
    changed = sorted(changes) + (["bundles (refusal cleared)"] if retry_bundles else [])
    typer.echo(f"connection {updated.name} updated ({', '.join(changed)})")
    if {"scopes", "push", "poll_referrals"} & set(changes):
        _warn_scopes(updated)


def _set_enabled(name: str, enabled: bool) -> None:
    from service.exchange import lifecycle

    actor = _lifecycle_actor()
    with_database(get_settings(), lambda conn: lifecycle.set_enabled(conn, name, enabled, datetime.now(UTC), actor))
    typer.echo(f"connection {name} {'enabled' if enabled else 'disabled'}")


@ehr_app.command("disable")
def ehr_disable(name: Annotated[str, typer.Argument()]) -> None:
    """Switch a connection off: nothing new is queued for it, and what waits stays queued, unsent."""
    _set_enabled(name, False)


@ehr_app.command("enable")
def ehr_enable(name: Annotated[str, typer.Argument()]) -> None:
    """Switch a connection on again: what waited for it flows."""
    _set_enabled(name, True)


@ehr_app.command("remove")
def ehr_remove(
    name: Annotated[str, typer.Argument()],
    force: Annotated[
        bool, typer.Option("--force", help="Also when changes wait for it: they become dead letters.")
    ] = False,
) -> None:
    """Remove a connection and what PeerLink believes its EHR holds. Refused while changes wait for it
    (unless --force) or a worker is delivering to it (disable it first)."""
    from service.exchange import lifecycle

    actor = _lifecycle_actor()
    result = with_database(get_settings(), lambda conn: lifecycle.remove(conn, name, force, datetime.now(UTC), actor))
    typer.echo(
        f"connection {name} removed ({result['dead_lettered']} waiting change(s) dead-lettered, "
        f"{result['forgotten']} delivered resource(s) forgotten)"
    )


@ehr_app.command("resync")
def ehr_resync(
    name: Annotated[str, typer.Argument()],
    since: Annotated[
        str | None, typer.Option(help="Only what was delivered since this ISO date or date-time (UTC).")
    ] = None,
) -> None:
    """For an EHR that lost or reset its data: forget what it is believed to hold and deliver it again
    (the same ids: nothing is duplicated at the EHR)."""
    from service.domain.errors import PeerLinkError
    from service.exchange import lifecycle

    try:
        moment = lifecycle.parse_since(since)
    except PeerLinkError as error:
        raise fail(f"peerlink: {error.detail}") from None
    actor = _lifecycle_actor()
    result = with_database(get_settings(), lambda conn: lifecycle.resync(conn, name, moment, datetime.now(UTC), actor))
    typer.echo(f"resync: {result['forgotten']} delivered resource(s) forgotten, {result['queued']} change(s) queued")


def _scopes_check(connection: Any, granted: str | None) -> tuple[str, bool, str]:
    """Whether the scopes asked for, and those the token answer grants (its ``scope``; none said: those
    asked for), cover what the connection pushes and polls."""
    lacking = connection.missing_scopes(granted) if granted is not None else connection.missing_scopes()
    if not lacking:
        return ("scopes", True, "granted" if granted is not None else "asked (the EHR did not say what it granted)")
    said = "granted" if granted is not None else "asked for"
    return ("scopes", False, f"not {said}, needed for what it pushes and polls: {' '.join(lacking)}")


@ehr_app.command("test")
def ehr_test(name: Annotated[str, typer.Argument()]) -> None:
    """Discovery, a token and the CapabilityStatement of a connection's EHR; exit 1 on failure."""
    from service.exchange import connections
    from service.exchange.connections import KeyUnavailable
    from service.exchange.smart_client import SmartClient, TokenFailure

    connection = with_database(get_settings(), lambda conn: connections.get(conn, name))

    async def run() -> list[tuple[str, bool, str]]:
        results: list[tuple[str, bool, str]] = []
        try:
            client = SmartClient(connection, connection.private_key())
        except KeyUnavailable as error:
            return [("private key", False, str(error))]
        try:
            try:
                results.append(("token endpoint", True, await client.token_url()))
                await client.access_token()
                results.append(("access token", True, "issued"))
                results.append(_scopes_check(connection, client.granted_scopes))
                statement = await client.capabilities()
                results.append(("CapabilityStatement", True, f"FHIR {statement.get('fhirVersion', '?')}"))
            except TokenFailure as error:
                results.append(("access token", False, str(error)))
            except Exception as error:
                results.append(("EHR", False, type(error).__name__))
        finally:
            await client.aclose()
        return results

    results = asyncio.run(run())
    for check, ok, detail in results:
        typer.echo(f"{'PASS' if ok else 'FAIL'}  {check:<20} {detail}")
    if not all(ok for _, ok, _ in results):
        raise typer.Exit(1)


@ehr_app.command("poll")
def ehr_poll(name: Annotated[str, typer.Argument()]) -> None:
    """Poll a connection for referrals now."""
    from service.exchange.worker import Worker
    from service.store import Database

    settings = get_settings()

    async def run() -> int:
        database = Database(settings.database_url)
        worker = Worker(database, settings)
        try:
            return await worker.poll_due(force=name)
        finally:
            await database.dispose()

    typer.echo(f"{asyncio.run(run())} new referral(s)")
