"""Sign-in with a password, sign-out, and the console's home page."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from service.audit import write, write_many
from service.settings import Settings
from service.store import Database

from . import accounts, sessions
from .audit import record
from .security import ConsoleRefused, UserDep
from .web import HOME, redirect, render, safe_next

router = APIRouter()
SIGN_IN = "/console/sign-in"
FAILED = "Sign-in failed: the username or password is wrong, or the account is locked or disabled."


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _database(request: Request) -> Database:
    database: Database = request.app.state.database
    return database


def sign_in_page(request: Request, *, next_url: str, error: str | None = None, status: int = 200) -> Response:
    """The sign-in form, with a pre-session cookie whose derived token the form carries."""
    policy = sessions.CookiePolicy.of(_settings(request))
    name = policy.name(sessions.PRESESSION_COOKIE)
    value = request.cookies.get(name) or secrets.token_urlsafe(32)
    oidc = _settings(request).console_oidc_issuer is not None
    context = {"title": "Sign in", "next_url": safe_next(next_url), "error": error, "oidc": oidc}
    response = render(request, "sign_in.html", context, status=status, csrf_token=sessions.csrf_token(value))
    response.set_cookie(name, value, **policy.attributes(None))  # type: ignore[arg-type]
    return response


@router.get("/sign-in", name="console_sign_in")
async def sign_in_form(request: Request, next: str = HOME) -> Response:
    return sign_in_page(request, next_url=next[:500])


def check_presession_csrf(request: Request, sent: str) -> None:
    policy = sessions.CookiePolicy.of(_settings(request))
    if not sessions.csrf_matches(request.cookies.get(policy.name(sessions.PRESESSION_COOKIE)), sent):
        raise ConsoleRefused(403, "the form's security token is missing or wrong; reload the sign-in page")


def signed_in_response(request: Request, value: str, next_url: str) -> Response:
    """The redirect after a sign-in: the session cookie set, the pre-session cookie gone."""
    settings = _settings(request)
    policy = sessions.CookiePolicy.of(settings)
    response = redirect(safe_next(next_url))
    max_age = settings.console_session_hours * 3600
    response.set_cookie(policy.name(sessions.SESSION_COOKIE), value, **policy.attributes(max_age))  # type: ignore[arg-type]
    response.delete_cookie(policy.name(sessions.PRESESSION_COOKIE), path="/", secure=policy.secure, httponly=True)
    return response


@router.post("/sign-in")
async def sign_in(
    request: Request,
    username: Annotated[str, Form(max_length=200)],
    password: Annotated[str, Form(max_length=1000)],
    csrf_token: Annotated[str, Form(max_length=200)] = "",
    next: Annotated[str, Form(max_length=500)] = HOME,
) -> Response:
    check_presession_csrf(request, csrf_token)
    settings = _settings(request)
    now = datetime.now(UTC)
    async with _database(request).read() as conn:
        found, matches = await accounts.password_matches(conn, username, password)
    async with _database(request).transaction() as conn:
        attempt = await accounts.check_password(
            conn, found, matches, now, settings.console_lockout_attempts, settings.console_lockout_minutes
        )
        account = attempt.account
        name = account.username if account else username.strip().lower()[:100]
        program_id = account.program_id if account else None
        if attempt.ok and account is not None:
            value = await sessions.start(conn, account.pk, "password", now, settings)
            detail = {"user": account.id, "role": account.role.value, "method": "password"}
            await write(
                conn, record(request, None, "sign-in", action="E", detail=detail, username=name, program_id=program_id)
            )
        else:
            detail = {"reason": attempt.reason}
            if account is not None:
                detail["user"] = account.id
            events = [
                record(
                    request,
                    None,
                    "sign-in-failed",
                    action="E",
                    outcome="4",
                    detail=detail,
                    username=name,
                    program_id=program_id,
                )
            ]
            if attempt.locked_now:
                lock = {"minutes": settings.console_lockout_minutes, **detail}
                events.append(
                    record(
                        request,
                        None,
                        "lockout",
                        action="E",
                        outcome="4",
                        detail=lock,
                        username=name,
                        program_id=program_id,
                    )
                )
            await write_many(conn, events)
    if not attempt.ok:
        return sign_in_page(request, next_url=next, error=FAILED, status=401)
    return signed_in_response(request, value, next)


@router.post("/sign-out")
async def sign_out(request: Request, user: UserDep) -> Response:
    policy = sessions.CookiePolicy.of(_settings(request))
    value = request.cookies.get(policy.name(sessions.SESSION_COOKIE), "")
    async with _database(request).transaction() as conn:
        await sessions.end(conn, value)
        await write(conn, record(request, user, "sign-out", action="E"))
    response = redirect(SIGN_IN)
    response.delete_cookie(policy.name(sessions.SESSION_COOKIE), path="/", secure=policy.secure, httponly=True)
    return response


@router.get("/", name="console_home")
async def home(request: Request, user: UserDep) -> Response:
    return render(request, "home.html", {"title": "Home"})
