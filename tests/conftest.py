"""Shared fixtures. Storage and API tests run on SQLite, and on PostgreSQL too when
PEERLINK_TEST_DATABASE_URL is set (one parametrized fixture, the same tests)."""

from __future__ import annotations

import os
import shutil
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from service.app import create_app
from service.auth import clients
from service.auth.keys import SigningKeys
from service.domain import Program, ProgramFields
from service.records.programs import create_program
from service.settings import Settings
from service.store import Database
from service.store.migrate import upgrade
from service.store.tables import metadata
from tests.auth_support import FULL_SCOPES, ClientKey, fetch_token, rsa_key

PG_URL = os.environ.get("PEERLINK_TEST_DATABASE_URL")
BACKENDS = ["sqlite", *(["postgresql"] if PG_URL else [])]


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for every test (faster than migrating each time)."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    upgrade(f"sqlite+aiosqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def postgres_migrated() -> str:
    assert PG_URL
    upgrade(PG_URL)
    return PG_URL


async def _truncate(database: Database) -> None:
    """Empty every table between tests (DELETE is far cheaper than TRUNCATE on tables this small)."""
    async with database.transaction() as conn:
        # the audit log's append-only trigger lets the archiver's transactions delete; so does this one
        await conn.execute(text("SET LOCAL peerlink.audit_archive = 'on'"))
        for table in reversed(metadata.sorted_tables):
            await conn.execute(table.delete())


@pytest.fixture(params=BACKENDS)
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    if request.param == "sqlite":
        path = tmp_path / "peerlink.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        db = Database(f"sqlite+aiosqlite:///{path}")
    else:
        db = Database(request.getfixturevalue("postgres_migrated"))
        await _truncate(db)
    try:
        yield db
    finally:
        await db.dispose()


BASE_URL = "http://peerlink.test"
TOKEN_URL = f"{BASE_URL}/auth/token"


@pytest.fixture(scope="session")
def keys_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One token-signing key for the whole run (RSA key generation is the slow part)."""
    path = tmp_path_factory.mktemp("keys")
    SigningKeys(path).ensure()
    return path


@pytest.fixture
def settings(database: Database, keys_dir: Path) -> Settings:
    return Settings(
        database_url=database.url.render_as_string(hide_password=False),
        max_body_bytes=64_000,
        public_url=BASE_URL,
        keys_dir=keys_dir,
    )


@pytest.fixture
async def program(database: Database) -> Program:
    async with database.transaction() as conn:
        return await create_program(
            conn,
            ProgramFields(code="demo", name="Test Peer Program", identifier_system="https://peer.example.org/ids"),
        )


async def register_client(
    database: Database,
    program: Program,
    client_id: str,
    scopes: str,
    *,
    key: ClientKey | None = None,
    organization: str | None = None,
) -> ClientKey:
    key = key or rsa_key()
    async with database.transaction() as conn:
        await clients.add(
            conn, program.id, client_id, scopes, datetime.now(UTC), jwks=key.jwks, organization=organization
        )
    return key


async def token_headers(
    http: httpx.AsyncClient,
    database: Database,
    program: Program,
    client_id: str,
    scopes: str = FULL_SCOPES,
    *,
    organization: str | None = None,
    key: ClientKey | None = None,
) -> dict[str, str]:
    """Register a client and return the Authorization header of a token it obtained."""
    key = await register_client(database, program, client_id, scopes, key=key, organization=organization)
    token = await fetch_token(http, key, client_id, TOKEN_URL)
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def anonymous(settings: Settings, database: Database, program: Program) -> AsyncIterator[httpx.AsyncClient]:
    """The gateway in process, no token."""
    app = create_app(settings, database)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http:
        yield http


@pytest.fixture
async def client(anonymous: httpx.AsyncClient, database: Database, program: Program) -> httpx.AsyncClient:
    """The gateway in process, as the program's own full-scope client (a token from the real endpoint)."""
    key = await register_client(database, program, "program-admin", FULL_SCOPES)
    token = await fetch_token(anonymous, key, "program-admin", TOKEN_URL)
    anonymous.headers["Authorization"] = f"Bearer {token}"
    return anonymous


# --- a line per backend in the summary, so CI shows that the PostgreSQL leg ran -----------------
_outcomes: Counter[tuple[str, str]] = Counter()


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when != "call" and not (report.when == "setup" and report.outcome != "passed"):
        return
    backend = "postgresql" if "[postgresql" in report.nodeid or "-postgresql" in report.nodeid else None
    if backend is None and ("[sqlite" in report.nodeid or "-sqlite" in report.nodeid):
        backend = "sqlite"
    if backend:
        _outcomes[(backend, report.outcome)] += 1


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for backend in ("sqlite", "postgresql"):
        done = {outcome: n for (b, outcome), n in _outcomes.items() if b == backend}
        if done:
            terminalreporter.write_line(
                f"database backend {backend}: {done.get('passed', 0)} tests passed, "
                f"{done.get('failed', 0)} failed, {done.get('skipped', 0)} skipped"
            )
    if not PG_URL:
        terminalreporter.write_line("database backend postgresql: not run (PEERLINK_TEST_DATABASE_URL unset)")
