"""Console fixtures: the gateway in process behind an httpx client on a loopback URL (so the session
cookie is not Secure and the client sends it back over http), and helpers to make accounts and sign in.

    async def test_x(console, database, program):
        await make_user(database, program, "ana", Role.SUPERVISOR)
        await sign_in(console, "ana")
        page = await console.get("/console/")
        token = csrf_of(page.text)            # the token the page's forms carry
        await console.post("/console/...", data={"csrf_token": token, ...})
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from service.app import create_app
from service.console import accounts
from service.console.accounts import Account
from service.console.roles import Role
from service.domain import Program
from service.settings import Settings
from service.store import Database
from tests.auth_support import FULL_SCOPES, fetch_token
from tests.conftest import register_client

CONSOLE_URL = "http://127.0.0.1:8080"
PASSWORD = "correct horse battery staple"
_CSRF = re.compile(r'name="csrf_token" value="([0-9a-f]{64})"')


@pytest.fixture
def settings(database: Database, keys_dir: Path) -> Settings:
    """The console's public URL is plain http on loopback (cookies without Secure)."""
    return Settings(
        database_url=database.url.render_as_string(hide_password=False),
        max_body_bytes=64_000,
        public_url=CONSOLE_URL,
        keys_dir=keys_dir,
    )


@pytest.fixture
def console_app(settings: Settings, database: Database, program: Program) -> FastAPI:
    return create_app(settings, database)


@pytest.fixture
async def console(console_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """The gateway in process; an httpx client keeping cookies, not following redirects."""
    transport = httpx.ASGITransport(app=console_app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url=CONSOLE_URL) as http:
        yield http


@pytest.fixture
async def peer(console_app: FastAPI, database: Database, program: Program) -> AsyncIterator[httpx.AsyncClient]:
    """The same gateway as the program's full-scope API client (to make records through the peer API)."""
    transport = httpx.ASGITransport(app=console_app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url=CONSOLE_URL) as http:
        key = await register_client(database, program, "console-test-client", FULL_SCOPES)
        token = await fetch_token(http, key, "console-test-client", f"{CONSOLE_URL}/auth/token")
        http.headers["Authorization"] = f"Bearer {token}"
        yield http


async def make_user(
    database: Database,
    program: Program,
    username: str,
    role: Role,
    *,
    password: str | None = PASSWORD,
    specialist_id: str | None = None,
    email: str | None = None,
    oidc_subject: str | None = None,
) -> Account:
    async with database.transaction() as conn:
        return await accounts.add(
            conn,
            program.id,
            username,
            role,
            datetime.now(UTC),
            password=password,
            specialist_id=specialist_id,
            email=email,
            oidc_subject=oidc_subject,
        )


def csrf_of(html: str) -> str:
    """The CSRF token a page's forms carry."""
    found = _CSRF.search(html)
    assert found, "no csrf_token field on the page"
    return found.group(1)


async def sign_in(http: httpx.AsyncClient, username: str, password: str = PASSWORD) -> httpx.Response:
    """Sign in through the real form (GET for the pre-session token, POST); asserts it worked."""
    form = await http.get("/console/sign-in")
    answer = await http.post(
        "/console/sign-in",
        data={"username": username, "password": password, "csrf_token": csrf_of(form.text), "next": "/console/"},
    )
    assert answer.status_code == 303, answer.text
    return answer


async def signed_in_as(
    http: httpx.AsyncClient, database: Database, program: Program, role: Role, **options: str | None
) -> Account:
    """Make an account of the role (username = the role) and sign the client in as it."""
    account = await make_user(database, program, role.value, role, **options)
    await sign_in(http, account.username)
    return account
