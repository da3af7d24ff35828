"""`peerlink clients ...`, `peerlink keys ...` and `peerlink token`: registrations and keys from the
command line (the admin API offers the same)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import orjson
import typer

from service.cli.common import fail, find_program_id, with_database
from service.settings import Settings, get_settings

T = TypeVar("T")
clients_app = typer.Typer(help="Register, list and disable SMART backend-services clients.", no_args_is_help=True)
keys_app = typer.Typer(help="The gateway's token-signing keys, and client key helpers.", no_args_is_help=True)

DEMO_CLIENT = "demo"
DEMO_SCOPES = "system/*.cruds peerlink.admin"


def demo_key_path(settings: Settings) -> Path:
    return settings.keys_dir / "demo-client.pem"


@clients_app.command("add")
def clients_add(
    client_id: Annotated[str, typer.Argument(help="The client's id (iss and sub of its assertions).")],
    scopes: Annotated[str, typer.Option(help='Allowed scopes, e.g. "system/*.rs system/Task.u".')],
    jwks: Annotated[Path | None, typer.Option(help="File with the client's public JWKS.")] = None,
    jwks_url: Annotated[str | None, typer.Option(help="URL where the client publishes its JWKS.")] = None,
    org: Annotated[
        str | None, typer.Option(help="Organisation it acts for (identifier system|value or NPI); none = the program.")
    ] = None,
    program: Annotated[str | None, typer.Option(help="Program code (default PEERLINK_DEFAULT_PROGRAM).")] = None,
) -> None:
    """Register a client with its public keys, allowed scopes and data boundary."""
    from service.auth import clients

    settings = get_settings()
    if (jwks is None) == (jwks_url is None):
        raise fail("give --jwks FILE or --jwks-url URL (one of the two)")
    try:
        document = orjson.loads(jwks.read_bytes()) if jwks is not None else None
    except (OSError, orjson.JSONDecodeError) as error:
        raise fail(f"cannot read the JWKS file: {error}") from None

    async def work(conn: Any) -> Any:
        program_id = await find_program_id(conn, program or settings.default_program)
        return await clients.add(
            conn, program_id, client_id, scopes, datetime.now(UTC), jwks=document, jwks_url=jwks_url, organization=org
        )

    client = with_database(settings, work)
    typer.echo(f"client {client.client_id} registered (scopes: {client.scopes}; organisation: {client.organization})")


@clients_app.command("list")
def clients_list(
    program: Annotated[str | None, typer.Option(help="Program code (default: every program).")] = None,
) -> None:
    """List registered clients."""
    from service.auth import clients

    settings = get_settings()

    async def work(conn: Any) -> list[Any]:
        program_id = await find_program_id(conn, program) if program else None
        return await clients.list_all(conn, program_id)

    for client in with_database(settings, work):
        state = "disabled" if client.disabled else "active"
        keys = client.jwks_url or f"{len((client.jwks or {}).get('keys', []))} inline key(s)"
        typer.echo(f"{client.client_id}\t{state}\t{client.organization or '(program)'}\t{client.scopes}\t{keys}")


def _set_disabled(client_id: str, disabled: bool) -> None:
    from service.auth import clients

    settings = get_settings()
    with_database(settings, lambda conn: clients.set_disabled(conn, client_id, disabled, datetime.now(UTC)))
    typer.echo(f"client {client_id} {'disabled' if disabled else 'enabled'}")


@clients_app.command("disable")
def clients_disable(client_id: Annotated[str, typer.Argument()]) -> None:
    """Disable a client: no new tokens; its current tokens stop working within seconds."""
    _set_disabled(client_id, True)


@clients_app.command("enable")
def clients_enable(client_id: Annotated[str, typer.Argument()]) -> None:
    """Enable a disabled client again."""
    _set_disabled(client_id, False)


def ensure_demo_client(settings: Settings) -> bool:
    """The demo program's full-scope client, its key pair kept in the keys folder. True when created."""
    from joserfc.jwk import RSAKey

    from service.auth import clients
    from service.auth.backend_client import load_private_key, public_jwks
    from service.auth.keys import write_private

    path = demo_key_path(settings)
    if not path.exists():
        write_private(path, RSAKey.generate_key(2048).as_pem(private=True))
    key = load_private_key(path.read_bytes())

    async def work(conn: Any) -> bool:
        if await clients.find(conn, DEMO_CLIENT) is not None:
            return False
        program_id = await find_program_id(conn, settings.default_program)
        await clients.add(conn, program_id, DEMO_CLIENT, DEMO_SCOPES, datetime.now(UTC), jwks=public_jwks(key))
        return True

    return with_database(settings, work)


@clients_app.command("demo")
def clients_demo() -> None:
    """Register the demo client (key pair in PEERLINK_KEYS_DIR); `make run` does this."""
    settings = get_settings()
    created = ensure_demo_client(settings)
    typer.echo(f"demo client {'registered' if created else 'already registered'} (key {demo_key_path(settings)})")


def token(
    client: Annotated[str, typer.Option(help="Client id.")] = DEMO_CLIENT,
    scope: Annotated[str | None, typer.Option(help="Scopes to ask for (default: all the client may have).")] = None,
    key: Annotated[Path | None, typer.Option(help="The client's private key (PEM); the demo key by default.")] = None,
    kid: Annotated[str | None, typer.Option(help="Key id registered for the key (default: its thumbprint).")] = None,
    url: Annotated[str | None, typer.Option(help="Token endpoint (default: this gateway's).")] = None,
    assertion_only: Annotated[
        bool, typer.Option("--assertion-only", help="Print the signed client assertion instead (for curl).")
    ] = False,
) -> None:
    """Print a fresh access token from the token endpoint: curl -H "Authorization: Bearer $(peerlink token)" ..."""
    import httpx

    from service.auth.backend_client import fetch_token, private_key_file, sign_assertion

    settings = get_settings()
    path = key or demo_key_path(settings)
    try:
        private = private_key_file(path, kid)
    except (OSError, ValueError) as error:
        raise fail(f"cannot load the private key {path}: {error}") from None
    token_url = url or f"{settings.base_url}/auth/token"
    if assertion_only:
        typer.echo(sign_assertion(token_url, client, private))
        return
    try:
        body = asyncio.run(fetch_token(token_url, client, private, scope=scope))
    except httpx.HTTPError as error:
        raise fail(f"the token endpoint {token_url} could not be reached: {error}", 1) from None
    except Exception as error:  # authlib raises OAuthError with the server's error and description
        raise fail(f"token refused: {error}", 1) from None
    typer.echo(body["access_token"])


@keys_app.command("rotate")
def keys_rotate() -> None:
    """Add a new signing key; the previous one keeps verifying the tokens it signed until they expire."""
    from service.auth.keys import SigningKeys

    keys = SigningKeys(get_settings().keys_dir)
    typer.echo(f"new signing key {keys.rotate()}")


@keys_app.command("list")
def keys_list() -> None:
    """The signing keys: kid, created, retired (epoch seconds)."""
    from service.auth.keys import SigningKeys

    keys = SigningKeys(get_settings().keys_dir)
    keys.ensure()
    for entry in keys.summary():
        typer.echo(f"{entry['kid']}\tcreated {entry['created']}\tretired {entry['retired'] or '-'}")


@keys_app.command("jwks")
def keys_jwks(
    pem: Annotated[Path, typer.Argument(help="A client's private key (PEM, RSA or EC P-384).")],
    alg: Annotated[str | None, typer.Option(help="RS384 or ES384 (default by key type).")] = None,
    kid: Annotated[str | None, typer.Option(help="Key id (default: the key's RFC 7638 thumbprint).")] = None,
) -> None:
    """Print the public JWKS to register for a client's private key."""
    from service.auth.backend_client import private_key_file, public_jwks

    try:
        key = private_key_file(pem, kid)
    except (OSError, ValueError) as error:
        raise fail(f"cannot load {pem}: {error}") from None
    typer.echo(orjson.dumps(public_jwks(key, alg), option=orjson.OPT_INDENT_2).decode())
