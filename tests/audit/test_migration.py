"""Migration 0005 chains the audit records written before it (in the order they were written) and
indexes them; downgrading gives the 0004 table back with its records."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from alembic import command

from service.audit.verify import verify
from service.store import Database
from service.store.migrate import alembic_config, upgrade
from tests.audit.conftest import index_rows, rows


def _old_records(path: Path) -> None:
    raw = sqlite3.connect(path)
    raw.executemany(
        "INSERT INTO audit_log (recorded, program_id, type, subtype, action, outcome, client_id, detail) "
        "VALUES (?, NULL, 'security', ?, 'E', ?, ?, ?)",
        [
            ("2026-01-01 10:00:00.000001", "token", "0", "demo", '{"scope": "system/*.rs"}'),
            ("2026-01-01 10:00:01.000000", "access-refused", "4", None, '{"status": 401, "reason": "no token"}'),
            ("2026-01-01 10:00:02.000000", "token", "0", "clinic", '{"patients": ["p1"], "entities": ["Goal/g1"]}'),
        ],
    )
    raw.commit()
    raw.close()


async def test_records_written_before_the_chain_are_chained_and_indexed(tmp_path):
    path = tmp_path / "old.db"
    url = f"sqlite+aiosqlite:///{path}"
    await _in_thread(upgrade, url, "0004")
    _old_records(path)
    await _in_thread(upgrade, url)
    database = Database(url)
    try:
        found = await rows(database)
        assert [(r["seq"], r["subtype"]) for r in found] == [(1, "token"), (2, "access-refused"), (3, "token")]
        assert await index_rows(database) == [(3, "entity", "Goal/g1"), (3, "patient", "p1")]
        report = await verify(database)
        assert report.ok, report.summary()
        assert report.live_checked == 3
    finally:
        await database.dispose()

    await _in_thread(command.downgrade, alembic_config(url), "0004")
    raw = sqlite3.connect(path)
    assert raw.execute("SELECT pk, subtype FROM audit_log ORDER BY pk").fetchall() == [
        (1, "token"),
        (2, "access-refused"),
        (3, "token"),
    ]
    raw.close()


async def _in_thread(function, *args):
    import asyncio

    return await asyncio.to_thread(function, *args)
