"""Fixtures of the consent tests: the gateway in process (the program's own client), an export folder in
the test's temporary folder and an export runner driven in the test, an EHR (respx) the outbox pushes
to, and the outbox worker."""

from __future__ import annotations

from pathlib import Path

import pytest
import respx

from service.bulk.runner import ExportRunner
from service.exchange.worker import Worker
from service.settings import Settings
from service.store import Database
from tests.conftest import BASE_URL
from tests.exchange.support import FakeEhr, fast_settings


@pytest.fixture
def settings(database: Database, keys_dir: Path, tmp_path: Path) -> Settings:
    return Settings(
        database_url=database.url.render_as_string(hide_password=False),
        max_body_bytes=64_000,
        public_url=BASE_URL,
        keys_dir=keys_dir,
        export_dir=tmp_path / "exports",
        export_in_process=False,
    )


@pytest.fixture
def runner(database: Database, settings: Settings) -> ExportRunner:
    return ExportRunner(database, settings)


@pytest.fixture
def ehr():
    with respx.mock(assert_all_called=False) as router:
        yield FakeEhr(router)


@pytest.fixture
def worker(database: Database, settings: Settings) -> Worker:
    return Worker(database, fast_settings(settings))
