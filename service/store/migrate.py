"""Alembic, driven from code: `peerlink migrate` and the tests use the same entry point."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from alembic import command
from alembic.config import Config

from .database import normalize_url

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    url = normalize_url(database_url).render_as_string(hide_password=False)
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def _in_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def upgrade(database_url: str, revision: str = "head") -> None:
    """Migrate to ``revision``. The environment runs its own event loop, so from inside a running
    loop the work moves to a thread."""
    config = alembic_config(database_url)
    if _in_event_loop():
        with ThreadPoolExecutor(max_workers=1) as pool:
            pool.submit(command.upgrade, config, revision).result()
    else:
        command.upgrade(config, revision)
