"""Shared fixtures. Storage and API tests run on SQLite, and on PostgreSQL too when
PEERLINK_TEST_DATABASE_URL is set (one parametrized fixture, the same tests)."""

from __future__ import annotations

import os
import shutil
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.app import create_app
from service.domain import Program, ProgramFields
from service.records.programs import create_program
from service.settings import Settings
from service.store import Database
from service.store.migrate import upgrade
from service.store.tables import metadata

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


@pytest.fixture
def settings(database: Database) -> Settings:
    return Settings(database_url=database.url.render_as_string(hide_password=False), max_body_bytes=64_000)


@pytest.fixture
async def program(database: Database) -> Program:
    async with database.transaction() as conn:
        return await create_program(
            conn,
            ProgramFields(code="demo", name="Test Peer Program", identifier_system="https://peer.example.org/ids"),
        )


@pytest.fixture
async def client(settings: Settings, database: Database, program: Program) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, database)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://peerlink.test") as http:
        yield http


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
