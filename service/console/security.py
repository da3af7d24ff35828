"""Who is signed in, and may they: the session cookie checked once per request, CSRF checked on
every POST (and any other unsafe method), the auditor refused any change, role guards.

Use ``user: UserDep`` for any signed-in user, or ``user: Annotated[CurrentUser, require_roles(...)]``.
Without a live session a GET is sent to the sign-in page (303) and anything else answers 401; a
role that may not is a 403 (both audited).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, Request

from service.settings import Settings
from service.store import Database

from . import accounts, sessions
from .roles import Role

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
SIGN_OUT_PATH = "/console/sign-out"


class SignInRequired(Exception):
    """No live session: GET goes to the sign-in page, anything else is a 401."""


class ConsoleRefused(Exception):
    """A console request that may not be carried out (rendered as an HTML page with the status)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class CurrentUser:
    id: str
    username: str
    role: Role
    program_id: str
    specialist_id: str | None
    """The peer specialist's own record (their caseload); None for the other roles."""
    csrf_token: str
    """The token every form of this session carries (``csrf_token`` field)."""
    pk: int = 0

    def has(self, *roles: Role) -> bool:
        return self.role in roles


def _flatten(roles: Iterable[Role | Iterable[Role]]) -> frozenset[Role]:
    found: set[Role] = set()
    for item in roles:
        if isinstance(item, Role):
            found.add(item)
        else:
            found.update(item)
    return frozenset(found)


async def sent_csrf(request: Request) -> str | None:
    """The token a request carries: the X-CSRF-Token header (htmx), else the form's csrf_token field."""
    header = request.headers.get(CSRF_HEADER)
    if header:
        return header
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media not in ("application/x-www-form-urlencoded", "multipart/form-data"):
        return None
    value = (await request.form()).get(CSRF_FIELD)
    return value if isinstance(value, str) else None


async def current_user(request: Request) -> CurrentUser:
    cached: CurrentUser | None = getattr(request.state, "console_user", None)
    if cached is not None:
        return cached
    settings: Settings = request.app.state.settings
    database: Database = request.app.state.database
    policy = sessions.CookiePolicy.of(settings)
    value = request.cookies.get(policy.name(sessions.SESSION_COOKIE))
    if not value:
        raise SignInRequired
    now = datetime.now(UTC)
    async with database.read() as conn:
        found, write = await sessions.find(conn, value, now, settings)
        account = await accounts.by_pk(conn, found.user_pk) if found is not None else None
    if write:
        async with database.transaction() as conn:
            await (sessions.end(conn, value) if write == "end" else sessions.touch(conn, value, now))
    if found is None or account is None:
        raise SignInRequired
    user = CurrentUser(
        account.id,
        account.username,
        account.role,
        account.program_id,
        account.specialist_id,
        sessions.csrf_token(value),
        account.pk,
    )
    request.state.console_user = user
    if request.method not in SAFE_METHODS:
        if not sessions.csrf_matches(value, await sent_csrf(request)):
            raise ConsoleRefused(403, "the form's security token is missing or wrong; reload the page and try again")
        if user.role is Role.AUDITOR and request.url.path != SIGN_OUT_PATH:
            raise ConsoleRefused(403, "the auditor role reads; it changes nothing")
    return user


UserDep = Annotated[CurrentUser, Depends(current_user)]


def require_roles(*roles: Role | Iterable[Role]) -> Any:
    """A dependency (use in ``Annotated[CurrentUser, require_roles(...)]``): the signed-in user, when
    their role is one of ``roles`` (roles or groups of them, service.console.roles); else a 403."""
    allowed = _flatten(roles)

    async def guard(user: UserDep) -> CurrentUser:
        if user.role not in allowed:
            raise ConsoleRefused(403, f"the {user.role.value} role may not open this page")
        return user

    return Depends(guard)
