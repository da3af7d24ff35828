"""``peerlink sandbox`` (run the simulated EHR) and ``peerlink check`` (is an EHR fit for PeerLink?).

``service/cli.py`` registers them (``app.add_typer(sandbox_app, name="sandbox")``,
``app.command("check")(check)``); ``python -m service.sandbox`` offers the same two commands.
"""

from __future__ import annotations

import secrets
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from .config import ADMIN_HEADER, ADMIN_SECRET_FILE, DEFAULT_TENANT, Knobs, Personality, SandboxConfig

sandbox_app = typer.Typer(
    help="Run a simulated hospital EHR (FHIR R4 + SMART Backend Services) with synthetic data.",
    invoke_without_command=True,
)


def _keys_folder(wanted: Path) -> tuple[Path, str]:
    """The keys folder (signing keys made on first run) and the admin secret kept in it; a read-only
    folder (a hardened container) falls back to a temporary one."""
    from service.auth.keys import SigningKeys, write_private

    for folder in (wanted, None):
        path = folder or Path(tempfile.mkdtemp(prefix="peerlink-sandbox-keys-"))
        try:
            path.mkdir(parents=True, exist_ok=True)
            SigningKeys(path).ensure()
            secret_file = path / ADMIN_SECRET_FILE
            if not secret_file.exists():
                write_private(secret_file, secrets.token_urlsafe(24).encode())
            return path, secret_file.read_text().strip()
        except OSError as error:
            if folder is None:
                raise
            typer.echo(f"sandbox: cannot write {wanted} ({error.strerror}); keys go to a temporary folder", err=True)
    raise AssertionError("unreachable")  # pragma: no cover


@sandbox_app.callback()
def sandbox(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Listen address.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Listen port.")] = 9090,
    personality: Annotated[
        Personality,
        typer.Option(
            help="generic, epic (RS384, JWKS URL, opaque tokens, "
            "no Encounter writes) or oracle (tenant in the path, open endpoint)."
        ),
    ] = Personality.GENERIC,
    public_url: Annotated[
        str | None, typer.Option(help="Root URL as clients see it (default: each request's Host).")
    ] = None,
    tenant: Annotated[str, typer.Option(help="Tenant id in the oracle personality's paths.")] = DEFAULT_TENANT,
    latency_ms: Annotated[int, typer.Option(help="Added to every FHIR and token request.")] = 0,
    error_rate: Annotated[float, typer.Option(help="Share of FHIR requests answered 500/503 (0-1).")] = 0.0,
    burst_every: Annotated[int, typer.Option(help="After this many FHIR requests, a burst of 429s (0: off).")] = 0,
    burst_size: Annotated[int, typer.Option(help="429s in a row per burst.")] = 1,
    retry_after: Annotated[int, typer.Option(help="Retry-After seconds on 429 and 503.")] = 1,
    refuse_bundles: Annotated[
        int,
        typer.Option(
            help="Answer transaction Bundles with this status (403, 405, 501, 400 or 422, with an "
            "OperationOutcome) while still listing transaction (0: off)."
        ),
    ] = 0,
    token_seconds: Annotated[int, typer.Option(help="Lifetime of access tokens.")] = 300,
    keys_dir: Annotated[Path, typer.Option(help="Signing keys and admin secret (made on first run).")] = Path(
        "var/sandbox-keys"
    ),
    clients: Annotated[Path | None, typer.Option(help="JSON list of clients to register at start.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic data.")] = 8,
    patients: Annotated[int, typer.Option(help="Number of seeded patients.")] = 50,
    no_transaction: Annotated[bool, typer.Option("--no-transaction", help="Refuse transaction Bundles.")] = False,
    no_conditional_create: Annotated[
        bool, typer.Option("--no-conditional-create", help="Ignore If-None-Exist.")
    ] = False,
    no_smart_discovery: Annotated[
        bool, typer.Option("--no-smart-discovery", help="No /.well-known/smart-configuration.")
    ] = False,
    no_search_param: Annotated[
        list[str] | None, typer.Option("--no-search-param", help="Leave out a search parameter: Type:param or param.")
    ] = None,
    deficient: Annotated[
        bool, typer.Option("--deficient", help="All of the above off, and Task:owner and Task:_lastUpdated.")
    ] = False,
) -> None:
    """Run the sandbox EHR with uvicorn (Ctrl-C stops it)."""
    if ctx.invoked_subcommand is not None:
        return
    import uvicorn

    from service.logs import configure_logging
    from service.settings import get_settings

    from .app import create_sandbox_app

    folder, secret = _keys_folder(keys_dir)
    try:
        config = SandboxConfig(
            personality=personality,
            tenant=tenant,
            public_url=public_url,
            admin_secret=secret,
            keys_dir=folder,
            seed=seed,
            patients=patients,
            token_seconds=token_seconds,
            knobs=Knobs(
                latency_ms=latency_ms,
                error_rate=error_rate,
                burst_every=burst_every,
                burst_size=burst_size,
                retry_after=retry_after,
                refuse_bundles=refuse_bundles,
            ),
            transaction=not no_transaction,
            conditional_create=not no_conditional_create,
            smart_discovery=not no_smart_discovery,
            unsupported_search_params=frozenset(no_search_param or ()),
            clients_file=clients,
        )
        if deficient:
            config = config.deficient()
        app = create_sandbox_app(config)
    except ValueError as error:
        typer.echo(f"peerlink sandbox: {error}", err=True)
        raise typer.Exit(2) from None
    settings = get_settings()
    configure_logging(settings.log_level, json=settings.log_json)
    shown_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # noqa: S104 - compared, not bound
    root = public_url or f"http://{shown_host}:{port}"
    layout = config.layout
    knobs = config.knobs
    bursts = f"every {knobs.burst_every} requests {knobs.burst_size} x 429" if knobs.burst_every else "off"
    typer.echo(
        f"PeerLink sandbox EHR ({personality.value}) on {root}\n"
        f"  FHIR base     {root}{layout.fhir}\n"
        + (f"  open FHIR     {root}{layout.open_fhir}  (no token, read-only)\n" if layout.open_fhir else "")
        + f"  token URL     {root}{layout.token}\n"
        f"  SMART         {root}{layout.fhir}/.well-known/smart-configuration"
        f"{'' if config.smart_discovery else '  (switched off)'}\n"
        f"  admin secret  {folder / ADMIN_SECRET_FILE}  (send it as {ADMIN_HEADER})\n"
        f"  admin API     POST {root}/admin/clients  GET {root}/sandbox/state  POST {root}/sandbox/clinic/referral\n"
        f"  knobs         latency {knobs.latency_ms} ms, error rate {knobs.error_rate}, 429 bursts {bursts}, "
        f"tokens {config.token_seconds} s"
        + (f", transaction Bundles refused with {knobs.refuse_bundles}" if knobs.refuse_bundles else "")
    )
    from service.heap import freeze_heap

    freeze_heap()
    uvicorn.run(app, host=host, port=port, log_config=None, access_log=False)


def _scenarios() -> None:
    from . import (
        scenario_outcomes,  # noqa: F401 - registers the outcomes-loop command
        scenario_subscription,  # noqa: F401 - registers the referral-loop command
    )
    from .scenarios import scenario_app

    sandbox_app.add_typer(scenario_app, name="scenario")


_scenarios()


def command_line() -> typer.Typer:
    """The two commands as ``peerlink`` offers them: ``sandbox`` and ``check``."""
    cli = typer.Typer(help="PeerLink sandbox EHR and EHR conformance check.", no_args_is_help=True)
    cli.add_typer(sandbox_app, name="sandbox")
    from service.exchange.conformance.command import check

    cli.command("check")(check)
    return cli


def main() -> None:
    """``python -m service.sandbox``."""
    command_line()()
