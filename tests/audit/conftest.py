"""Fixtures of the audit tests: the gateway with the audit routes included, direct SQL on the audit
tables (with the append-only trigger disabled, as an attacker with database access would), and
records made to measure."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select, text

from service.api import access
from service.api.fhir import audit_events
from service.api.peer import disclosures
from service.app import create_app
from service.audit import AuditRecord, write
from service.audit.chain import Problem
from service.audit.verify import VerifyReport
from service.settings import Settings
from service.store import Database
from service.store.tables import audit_entities, audit_log, metadata
from tests.auth_support import FULL_SCOPES, fetch_token
from tests.conftest import BACKENDS, BASE_URL, TOKEN_URL, register_client

AUDIT_TABLES = ("audit_log", "audit_entities", "audit_anchors")


@pytest.fixture(params=BACKENDS)
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """tests/conftest.py's fixture, emptying PostgreSQL the way the append-only rule allows: the
    audit tables only in a transaction that set peerlink.audit_archive = on."""
    if request.param == "sqlite":
        path = tmp_path / "peerlink.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        db = Database(f"sqlite+aiosqlite:///{path}")
    else:
        db = Database(request.getfixturevalue("postgres_migrated"))
        async with db.transaction() as conn:
            await conn.execute(text("SET LOCAL peerlink.audit_archive = 'on'"))
            for table in reversed(metadata.sorted_tables):
                await conn.execute(table.delete())
    try:
        yield db
    finally:
        await db.dispose()


@pytest.fixture(autouse=True)
def _audit_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    """The access rules of the two audit routes (service/api/access.py RULES, once wired)."""
    monkeypatch.setitem(access.RULES, "fhir_audit_search", access.Rule(None, admin=True))
    monkeypatch.setitem(access.RULES, "participant_disclosures", access.Rule(None, peer=True, admin=True))


def with_audit_routes(app: FastAPI) -> FastAPI:
    """Include the audit routers ahead of the others (before /fhir/{type} would take /fhir/AuditEvent)."""
    routes = app.router.routes
    before = len(routes)
    app.include_router(audit_events.router, prefix="/fhir")
    app.include_router(disclosures.router, prefix="/peer/v1")
    added = routes[before:]
    del routes[before:]
    routes[0:0] = added
    return app


@pytest.fixture
async def gateway(settings: Settings, database: Database, program: Any) -> AsyncIterator[httpx.AsyncClient]:
    """The gateway in process with the audit routes, no token."""
    app = with_audit_routes(create_app(settings, database))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http:
        yield http


async def login(
    http: httpx.AsyncClient,
    database: Database,
    program: Any,
    client_id: str,
    scopes: str = FULL_SCOPES,
    *,
    organization: str | None = None,
) -> dict[str, str]:
    key = await register_client(database, program, client_id, scopes, organization=organization)
    token = await fetch_token(http, key, client_id, TOKEN_URL)
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def admin(gateway: httpx.AsyncClient, database: Database, program: Any) -> dict[str, str]:
    return await login(gateway, database, program, "privacy-officer")


def record(
    subtype: str = "read",
    *,
    type_: str = "rest",
    action: str = "R",
    outcome: str = "0",
    client_id: str | None = "clinic-app",
    organization: str | None = None,
    program_id: str | None = None,
    address: str | None = "10.0.0.7",
    recorded: datetime | None = None,
    **detail: Any,
) -> AuditRecord:
    return AuditRecord(
        type_,
        subtype,
        action,  # type: ignore[arg-type]
        outcome,  # type: ignore[arg-type]
        client_id=client_id,
        organization=organization,
        address=address,
        program_id=program_id,
        detail=detail,
        **({"recorded": recorded} if recorded else {}),
    )


async def write_records(database: Database, count: int, *, start: datetime | None = None, **kw: Any) -> None:
    """``count`` records, one a minute from ``start`` (default: ``count`` minutes ago)."""
    start = start or datetime.now(UTC) - timedelta(minutes=count)
    for i in range(count):
        await write(database, record(recorded=start + timedelta(minutes=i), n=i, **kw))


async def rows(database: Database) -> list[dict[str, Any]]:
    async with database.engine.connect() as conn:
        return [dict(r) for r in (await conn.execute(select(audit_log).order_by(audit_log.c.seq))).mappings()]


async def index_rows(database: Database) -> list[tuple[int, str, str]]:
    async with database.engine.connect() as conn:
        found = await conn.execute(
            select(audit_entities.c.seq, audit_entities.c.kind, audit_entities.c.ref).order_by(
                audit_entities.c.seq, audit_entities.c.kind, audit_entities.c.ref
            )
        )
        return [(int(s), k, r) for s, k, r in found.all()]


def break_audit_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every audit batch fail inside its transaction (SQLite and SQLAlchemy: hashing raises;
    PostgreSQL: the one statement fails in the database)."""
    from service.audit import append, postgres_sink, sqlite_sink

    def failing(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("hashing failed after the chain lock was taken")

    monkeypatch.setattr(sqlite_sink, "chain_hashes", failing)
    monkeypatch.setattr(append, "chain_hashes", failing)
    broken = postgres_sink.PG_APPEND.replace("peerlink_audit_append(", "no_such_function(")
    monkeypatch.setattr(postgres_sink, "PG_APPEND", broken)


def problem_of(report: VerifyReport) -> Problem:
    """The first problem verify found (failing the test when it found none)."""
    assert report.problem is not None, f"the chain verified: {report.summary()}"
    return report.problem


async def tamper(database: Database, statements: Sequence[str], params: dict[str, Any] | None = None) -> None:
    """Run SQL straight on the audit tables, past every guard: on PostgreSQL with the append-only
    triggers (and the foreign-key triggers) disabled for the transaction, on SQLite without the
    foreign-key checks."""
    if database.is_sqlite:
        raw = sqlite3.connect(str(database.url.database))
        try:
            for statement in statements:
                raw.execute(statement, params or {})
            raw.commit()
        finally:
            raw.close()
        return
    async with database.transaction() as conn:
        for table in AUDIT_TABLES:
            await conn.execute(text(f"ALTER TABLE {table} DISABLE TRIGGER ALL"))
        for statement in statements:
            await conn.execute(text(statement), params or {})
        for table in AUDIT_TABLES:
            await conn.execute(text(f"ALTER TABLE {table} ENABLE TRIGGER ALL"))
