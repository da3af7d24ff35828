"""Console accounts in the store: add, list, disable, reset a password, and the sign-in checks
(the lockout counts failures in a row and locks for a while). The CLI (`peerlink users`) and the
console's own pages both use these."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from service.domain.errors import BadRequest, Conflict, NotFound
from service.store.tables import console_users, specialists

from .passwords import hash_password, verify_password
from .roles import Role


@dataclass(frozen=True)
class Account:
    pk: int
    id: str
    program_id: str
    username: str
    role: Role
    specialist_id: str | None
    email: str | None
    oidc_subject: str | None
    disabled: bool
    locked_until: datetime | None
    last_sign_in_at: datetime | None
    password_hash: str | None = None

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "username": self.username,
            "role": self.role.value,
            "specialist_id": self.specialist_id,
            "email": self.email,
            "oidc": self.oidc_subject is not None,
            "password": self.password_hash is not None,
            "disabled": self.disabled,
            "locked_until": self.locked_until.isoformat() if self.locked_until else None,
            "last_sign_in_at": self.last_sign_in_at.isoformat() if self.last_sign_in_at else None,
        }


def _account(row: Any) -> Account:
    return Account(
        row.pk,
        row.id,
        row.program_id,
        row.username,
        Role(row.role),
        row.specialist_id,
        row.email,
        row.oidc_subject,
        bool(row.disabled),
        row.locked_until,
        row.last_sign_in_at,
        row.password_hash,
    )


def normal_username(username: str) -> str:
    name = username.strip().lower()
    if not name or len(name) > 100 or any(c.isspace() for c in name):
        raise BadRequest("a username is 1 to 100 characters without spaces")
    return name


async def add(
    conn: AsyncConnection,
    program_id: str,
    username: str,
    role: Role,
    now: datetime,
    *,
    password: str | None = None,
    specialist_id: str | None = None,
    email: str | None = None,
    oidc_subject: str | None = None,
) -> Account:
    name = normal_username(username)
    if role is Role.PEER_SPECIALIST and specialist_id is None:
        raise BadRequest("a peer specialist's account names their specialist record (--specialist)")
    if role is not Role.PEER_SPECIALIST and specialist_id is not None:
        raise BadRequest("only a peer specialist's account names a specialist record")
    if specialist_id is not None:
        owner = select(specialists.c.program_id).where(specialists.c.id == specialist_id)
        if (await conn.execute(owner)).scalar() != program_id:
            raise NotFound(f"no specialist {specialist_id} in this program")
    if password is None and oidc_subject is None and email is None:
        raise BadRequest("an account needs a password, or an OpenID Connect subject or email to sign in with")
    try:
        hashed = hash_password(password) if password is not None else None
    except ValueError as error:
        raise BadRequest(str(error)) from None
    taken = select(func.count()).select_from(console_users).where(console_users.c.username == name)
    if (await conn.execute(taken)).scalar_one():
        raise Conflict(f"the username {name} is taken")
    values = {
        "id": str(uuid.uuid4()),
        "program_id": program_id,
        "username": name,
        "role": role.value,
        "specialist_id": specialist_id,
        "password_hash": hashed,
        "email": email.strip().lower() if email else None,
        "oidc_subject": oidc_subject,
        "disabled": False,
        "failed_attempts": 0,
        "created_at": now,
        "updated_at": now,
    }
    await conn.execute(insert(console_users).values(**values))
    return await by_username(conn, name)


async def by_username(conn: AsyncConnection, username: str) -> Account:
    row = (await conn.execute(select(console_users).where(console_users.c.username == username))).first()
    if row is None:
        raise NotFound(f"no console user {username}")
    return _account(row)


async def find(conn: AsyncConnection, username: str) -> Account | None:
    try:
        return await by_username(conn, normal_username(username))
    except (NotFound, BadRequest):
        return None


async def by_pk(conn: AsyncConnection, pk: int) -> Account | None:
    row = (await conn.execute(select(console_users).where(console_users.c.pk == pk))).first()
    return _account(row) if row is not None else None


async def list_all(conn: AsyncConnection, program_id: str | None = None) -> list[Account]:
    query = select(console_users).order_by(console_users.c.username)
    if program_id is not None:
        query = query.where(console_users.c.program_id == program_id)
    return [_account(row) for row in await conn.execute(query)]


async def set_disabled(conn: AsyncConnection, username: str, disabled: bool, now: datetime) -> Account:
    """A disabled account cannot sign in, and its sessions end (they are deleted)."""
    from .sessions import end_all

    account = await by_username(conn, normal_username(username))
    c = console_users.c
    await conn.execute(update(console_users).where(c.pk == account.pk).values(disabled=disabled, updated_at=now))
    if disabled:
        await end_all(conn, account.pk)
    return await by_username(conn, account.username)


async def reset_password(conn: AsyncConnection, username: str, password: str, now: datetime) -> Account:
    """A new password; the lockout is lifted and every session of the account ends."""
    from .sessions import end_all

    account = await by_username(conn, normal_username(username))
    try:
        hashed = hash_password(password)
    except ValueError as error:
        raise BadRequest(str(error)) from None
    c = console_users.c
    values = {"password_hash": hashed, "failed_attempts": 0, "locked_until": None, "updated_at": now}
    await conn.execute(update(console_users).where(c.pk == account.pk).values(**values))
    await end_all(conn, account.pk)
    return await by_username(conn, account.username)


@dataclass(frozen=True)
class Attempt:
    account: Account | None
    ok: bool
    locked_now: bool = False
    """This failure locked the account."""
    reason: str = ""
    """Why not (for the audit record, never shown): unknown, disabled, locked, password."""


async def password_matches(conn: AsyncConnection, username: str, password: str) -> tuple[Account | None, bool]:
    """The account and whether the password is its own: the slow argon2 check runs in a worker
    thread, outside any write transaction (an unknown user costs the same time)."""
    account = await find(conn, username)
    stored = account.password_hash if account else None
    return account, await asyncio.to_thread(verify_password, stored, password)


async def check_password(
    conn: AsyncConnection, found: Account | None, matches: bool, now: datetime, attempts: int, lock_minutes: int
) -> Attempt:
    """Count a sign-in attempt (``matches`` from :func:`password_matches`) in the caller's transaction:
    the account is read again there, so a lock, a disabling or a new password since wins."""
    account = await by_pk(conn, found.pk) if found is not None else None
    if found is None or account is None:
        return Attempt(None, False, reason="unknown")
    c = console_users.c
    if account.disabled:
        return Attempt(account, False, reason="disabled")
    if account.locked_until is not None and account.locked_until > now:
        return Attempt(account, False, reason="locked")
    if not matches or account.password_hash != found.password_hash:
        failures = (await conn.execute(select(c.failed_attempts).where(c.pk == account.pk))).scalar_one() + 1
        locked = failures >= attempts
        values: dict[str, Any] = {"failed_attempts": 0 if locked else failures}
        if locked:
            values["locked_until"] = now + timedelta(minutes=lock_minutes)
        await conn.execute(update(console_users).where(c.pk == account.pk).values(**values))
        return Attempt(account, False, locked_now=locked, reason="password")
    await signed_in(conn, account, now)
    return Attempt(account, True)


async def signed_in(conn: AsyncConnection, account: Account, now: datetime) -> None:
    c = console_users.c
    values = {"failed_attempts": 0, "locked_until": None, "last_sign_in_at": now}
    await conn.execute(update(console_users).where(c.pk == account.pk).values(**values))
