"""Shared fixtures. Storage and API tests run on SQLite, and on PostgreSQL too when
PEERLINK_TEST_DATABASE_URL is set (one parametrized fixture, the same tests).

Under pytest-xdist (`make pytest` runs `-n`) every worker process has a PostgreSQL database of its own,
``<database>_<worker id>``, made when the worker starts and dropped when it ends; PG_URL (and the
environment variable, for anything the tests start) names it. Temporary folders are per worker already;
tests that serve on loopback take a free port (tests/e2e/gateway.py `free_port`), never a fixed one."""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from service.app import create_app
from service.auth import clients
from service.auth.keys import SigningKeys
from service.cli.seed import seed_demo
from service.domain import Program, ProgramFields
from service.records.programs import create_program
from service.settings import Settings
from service.store import Database
from service.store.migrate import upgrade
from service.store.tables import metadata
from tests.auth_support import FULL_SCOPES, ClientKey, fetch_token, rsa_key

PG_BASE_URL = os.environ.get("PEERLINK_TEST_DATABASE_URL")
XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER")  # set by pytest-xdist in its workers: gw0, gw1, ...


def _with_database(url: str, name: str) -> str:
    return make_url(url).set(database=name).render_as_string(hide_password=False)


def _dsn(url: str) -> str:
    """The asyncpg form of a SQLAlchemy PostgreSQL URL."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


PG_URL = PG_BASE_URL
if PG_BASE_URL and XDIST_WORKER:
    PG_URL = _with_database(PG_BASE_URL, f"{make_url(PG_BASE_URL).database}_{XDIST_WORKER}")
    os.environ["PEERLINK_TEST_DATABASE_URL"] = PG_URL
BACKENDS = ["sqlite", *(["postgresql"] if PG_URL else [])]


def in_thread(work: Any) -> Any:
    """Run the coroutine ``work`` to the end in an event loop of its own (a session fixture may be set
    up from inside a test's running loop)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, work).result()


async def _admin(*statements: str) -> None:
    """Statements on the server of PEERLINK_TEST_DATABASE_URL, through the database it names."""
    assert PG_BASE_URL
    conn = await asyncpg.connect(_dsn(PG_BASE_URL))
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


def create_pg_database(name: str, template: str | None = None) -> str:
    """A fresh database on the test server (commits not waited for: it is thrown away); returns its URL."""
    assert PG_BASE_URL
    copy = f' TEMPLATE "{template}"' if template else ""
    in_thread(
        _admin(
            f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)',
            f'CREATE DATABASE "{name}"{copy}',
            f'ALTER DATABASE "{name}" SET synchronous_commit TO off',
        )
    )
    return _with_database(PG_BASE_URL, name)


def drop_pg_database(name: str) -> None:
    in_thread(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def pytest_configure(config: pytest.Config) -> None:
    if PG_URL and PG_URL != PG_BASE_URL:
        create_pg_database(str(make_url(PG_URL).database))


def pytest_unconfigure(config: pytest.Config) -> None:
    if PG_URL and PG_URL != PG_BASE_URL:
        drop_pg_database(str(make_url(PG_URL).database))


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The end-to-end tests (real processes, the longest ones) first, so that under xdist they start
    early on different workers instead of ending the run; the order within each group is kept."""
    items.sort(key=lambda item: item.get_closest_marker("e2e") is None)


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


async def _seed(url: str) -> None:
    database = Database(url)
    try:
        async with database.transaction() as conn:
            assert await seed_demo(conn) is not None
    finally:
        await database.dispose()


@pytest.fixture(scope="session")
def sqlite_demo_template(sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The migrated SQLite file with the demo program of `peerlink seed`, seeded once per session."""
    path = tmp_path_factory.mktemp("demo-template") / "demo.db"
    shutil.copy(sqlite_template, path)
    in_thread(_seed(f"sqlite+aiosqlite:///{path}"))
    return path


@pytest.fixture(scope="session")
def postgres_demo_template() -> Iterator[str]:
    """A PostgreSQL database, migrated and seeded with the demo program once per session (and worker),
    copied for each test that wants it with CREATE DATABASE ... TEMPLATE; yields its name."""
    assert PG_URL
    name = f"{make_url(PG_URL).database}_demo"
    url = create_pg_database(name)
    upgrade(url)
    in_thread(_seed(url))
    yield name
    drop_pg_database(name)


@pytest.fixture
def demo_seeded() -> bool:
    """Whether ``database`` starts with the demo program of `peerlink seed` (seeded once per session and
    copied, not seeded per test). Override it to return True in a conftest or test module."""
    return False


@pytest.fixture(params=BACKENDS)
async def database(request: pytest.FixtureRequest, tmp_path: Path, demo_seeded: bool) -> AsyncIterator[Database]:
    copied: str | None = None
    if request.param == "sqlite":
        path = tmp_path / "peerlink.db"
        shutil.copy(request.getfixturevalue("sqlite_demo_template" if demo_seeded else "sqlite_template"), path)
        db = Database(f"sqlite+aiosqlite:///{path}")
    elif demo_seeded:
        template = request.getfixturevalue("postgres_demo_template")
        copied = f"{template}_{uuid.uuid4().hex[:8]}"
        db = Database(create_pg_database(copied, template=template))
    else:
        db = Database(request.getfixturevalue("postgres_migrated"))
        await _truncate(db)
    try:
        yield db
    finally:
        await db.dispose()
        if copied:
            drop_pg_database(copied)


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
