"""Fixtures of the bulk export tests: the gateway in process on the demo data of `peerlink seed` (seeded
once per session and copied for each test: ``demo_seeded``),
with its export folder in the test's temporary folder; export jobs are run by an ExportRunner
driven in the test (the in-process app's lifespan does not run under the ASGI transport)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from service.app import create_app
from service.bulk.runner import ExportRunner
from service.domain import Program
from service.records.programs import get_by_code
from service.settings import Settings
from service.store import Database
from tests.auth_support import FULL_SCOPES, fetch_token
from tests.conftest import BASE_URL, TOKEN_URL, register_client


@pytest.fixture
def settings(database: Database, keys_dir: Path, tmp_path: Path) -> Settings:
    return Settings(
        database_url=database.url.render_as_string(hide_password=False),
        max_body_bytes=64_000,
        public_url=BASE_URL,
        keys_dir=keys_dir,
        export_dir=tmp_path / "exports",
        export_in_process=False,
        export_chunk_rows=10,  # several chunks per type even on the demo data
    )


@pytest.fixture
def demo_seeded() -> bool:
    return True


@pytest.fixture
async def demo(database: Database) -> Program:
    """The demo program of `peerlink seed` (the copied database holds it)."""
    async with database.read() as conn:
        return await get_by_code(conn, "demo")


@pytest.fixture
async def http(settings: Settings, database: Database, demo: Program) -> AsyncIterator[httpx.AsyncClient]:
    """The gateway in process, no token yet (see ``as_client``)."""
    app = create_app(settings, database)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL) as client:
        yield client


async def as_client(
    http: httpx.AsyncClient,
    database: Database,
    program: Program,
    client_id: str,
    scopes: str = FULL_SCOPES,
    organization: str | None = None,
) -> dict[str, str]:
    key = await register_client(database, program, client_id, scopes, organization=organization)
    return {"Authorization": f"Bearer {await fetch_token(http, key, client_id, TOKEN_URL)}"}


@pytest.fixture
async def admin(http: httpx.AsyncClient, database: Database, demo: Program) -> dict[str, str]:
    """The demo program's own full-scope client."""
    return await as_client(http, database, demo, "program-admin")


@pytest.fixture
def runner(database: Database, settings: Settings) -> ExportRunner:
    return ExportRunner(database, settings)
