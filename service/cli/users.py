"""`peerlink users add|list|disable|enable|reset-password`: the console's accounts from the command
line (the first program admin is made here). Passwords are asked for twice (hidden), or read from
standard input with --password-stdin; they are never an argument (shell history, process lists)."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import typer

from service.cli.common import fail, find_program_id, with_database
from service.settings import get_settings

users_app = typer.Typer(help="Console accounts: add, list, disable, reset a password.", no_args_is_help=True)
ROLES = "program-admin, supervisor, peer-specialist, integrator, auditor"
STDIN_HELP = "Read the password from standard input (one line) instead of asking."


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    value: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    return value


async def _audit(conn: Any, subtype: str, account: Any, action: Literal["C", "U"] = "U") -> None:
    from service.audit import AuditRecord, write

    detail = {"user": account.id, "username": account.username, "role": account.role.value}
    await write(
        conn,
        AuditRecord("console", subtype, action, "0", client_id="cli", program_id=account.program_id, detail=detail),
    )


@users_app.command("add")
def users_add(
    username: Annotated[str, typer.Argument(help="The sign-in name (case-insensitive, no spaces).")],
    role: Annotated[str, typer.Option(help=f"One of: {ROLES}.")],
    specialist: Annotated[str | None, typer.Option(help="A peer specialist's own specialist record id.")] = None,
    email: Annotated[str | None, typer.Option(help="Email the OpenID Connect sign-in may match.")] = None,
    oidc_subject: Annotated[str | None, typer.Option(help="The issuer's subject (sub) for this person.")] = None,
    no_password: Annotated[
        bool, typer.Option("--no-password", help="OpenID Connect sign-in only (needs --email or --oidc-subject).")
    ] = False,
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help=STDIN_HELP)] = False,
    program: Annotated[str | None, typer.Option(help="Program code (default PEERLINK_DEFAULT_PROGRAM).")] = None,
) -> None:
    """Add a console account."""
    from service.console import accounts
    from service.console.roles import Role

    try:
        chosen = Role(role)
    except ValueError:
        raise fail(f"unknown role {role!r}: one of {ROLES}") from None
    password = None if no_password else _password(password_stdin)
    settings = get_settings()

    async def work(conn: Any) -> Any:
        program_id = await find_program_id(conn, program or settings.default_program)
        account = await accounts.add(
            conn,
            program_id,
            username,
            chosen,
            datetime.now(UTC),
            password=password,
            specialist_id=specialist,
            email=email,
            oidc_subject=oidc_subject,
        )
        await _audit(conn, "user-add", account, "C")
        return account

    account = with_database(settings, work)
    typer.echo(f"console user {account.username} added ({account.role.value})")


@users_app.command("list")
def users_list(
    program: Annotated[str | None, typer.Option(help="Program code (default: every program).")] = None,
) -> None:
    """List console accounts: username, role, state, specialist, last sign-in."""
    from service.console import accounts

    now = datetime.now(UTC)

    async def work(conn: Any) -> list[Any]:
        program_id = await find_program_id(conn, program) if program else None
        return await accounts.list_all(conn, program_id)

    for account in with_database(get_settings(), work):
        locked = account.locked_until is not None and account.locked_until > now
        state = "disabled" if account.disabled else "locked" if locked else "active"
        last = account.last_sign_in_at.isoformat(timespec="seconds") if account.last_sign_in_at else "never"
        typer.echo(f"{account.username}\t{account.role.value}\t{state}\t{account.specialist_id or '-'}\t{last}")


def _set_disabled(username: str, disabled: bool) -> None:
    from service.console import accounts

    async def work(conn: Any) -> Any:
        account = await accounts.set_disabled(conn, username, disabled, datetime.now(UTC))
        await _audit(conn, "user-disable" if disabled else "user-enable", account)
        return account

    account = with_database(get_settings(), work)
    typer.echo(f"console user {account.username} {'disabled' if disabled else 'enabled'}")


@users_app.command("disable")
def users_disable(username: Annotated[str, typer.Argument()]) -> None:
    """Disable an account: it cannot sign in, and its sessions end now."""
    _set_disabled(username, True)


@users_app.command("enable")
def users_enable(username: Annotated[str, typer.Argument()]) -> None:
    """Enable a disabled account again."""
    _set_disabled(username, False)


@users_app.command("reset-password")
def users_reset_password(
    username: Annotated[str, typer.Argument()],
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help=STDIN_HELP)] = False,
) -> None:
    """Set a new password: the lockout is lifted and the account's sessions end."""
    from service.console import accounts

    password = _password(password_stdin)

    async def work(conn: Any) -> Any:
        account = await accounts.reset_password(conn, username, password, datetime.now(UTC))
        await _audit(conn, "user-reset-password", account)
        return account

    account = with_database(get_settings(), work)
    typer.echo(f"console user {account.username}: password reset")
