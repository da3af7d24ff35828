"""Migration 0005 chains the audit records written before it (in the order they were written) and
indexes them; downgrading gives the 0004 table back with its records."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from alembic import command

from service.audit import chain as runtime_chain
from service.audit.append import CHAIN_LOCK
from service.audit.record import AuditRecord, chain_hashes, prepare
from service.audit.verify import verify
from service.store import Database
from service.store.migrate import alembic_config, upgrade
from service.store.migrations import audit_chain_0005 as frozen
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


# The frozen copy of the chain that migration 0005 uses equals the runtime chain today. When this
# fails, the runtime chain changed: keep audit_chain_0005 as it is and give the change its own migration.

ROWS = [
    {
        "seq": 1,
        "recorded": datetime(2026, 1, 1, 10, 0, 0, 1, tzinfo=UTC),
        "program_id": None,
        "type": "security",
        "subtype": "token",
        "action": "E",
        "outcome": "0",
        "client_id": "demo",
        "organization": None,
        "address": "127.0.0.1",
        "detail": {"scope": "system/*.rs", "n": 3, "ok": True, "nested": {"b": [1, "x"], "a": None}},
        "prev_hash": frozen.GENESIS,
    },
    {
        "seq": 42,
        "recorded": datetime(2026, 7, 1, 12, 30, tzinfo=timezone(timedelta(hours=-5))),
        "program_id": "prog-1",
        "type": "rest",
        "subtype": "search",
        "action": "R",
        "outcome": "4",
        "client_id": None,
        "organization": "Riverside Clinic — Zoë",
        "address": None,
        "detail": {"query": "name=Ünïcode&_count=5", "patients": ["p1"], "status": 403},
        "prev_hash": "ab" * 32,
    },
    {**dict.fromkeys(runtime_chain.HASHED_COLUMNS, None), "seq": 7, "recorded": "2026-01-01T00:00:00.000000Z"},
]


def test_the_frozen_constants_are_the_runtime_ones():
    assert frozen.CHAIN_LOCK == CHAIN_LOCK
    assert frozen.GENESIS == runtime_chain.GENESIS
    assert frozen.HASHED_COLUMNS == runtime_chain.HASHED_COLUMNS
    assert frozen.QUERY_SUBTYPES == runtime_chain.QUERY_SUBTYPES


@pytest.mark.parametrize("row", ROWS, ids=["token", "search-unicode-offset", "nulls"])
def test_the_frozen_hash_is_the_runtime_hash(row):
    assert frozen.canonical(row) == runtime_chain.canonical(row)
    assert frozen.record_hash(row) == runtime_chain.record_hash(row)
    assert len(frozen.record_hash(row)) == 64


def test_the_frozen_hash_is_what_the_writer_chains():
    records = [
        AuditRecord("security", "token", "E", "0", client_id="demo", detail={"scope": "system/*.rs"}),
        AuditRecord("rest", "read", "R", "0", program_id="p", detail={"patients": ["p1"], "entities": ["Goal/g1"]}),
    ]
    prepared = [prepare(r) for r in records]
    for item, seq, prev, digest in chain_hashes(prepared, 9, frozen.GENESIS):
        row = {**item.values, "seq": seq, "prev_hash": prev}
        assert frozen.record_hash(row) == digest
        assert frozen.entities_of(item.values["detail"], item.values["subtype"]) == item.entities


@pytest.mark.parametrize(
    ("detail", "subtype"),
    [
        ({"patients": ["p1", "Patient/p2", "https://ehr.example.org/fhir/Patient/p3"]}, "read"),
        ({"entities": ["Patient/p1", "Goal/g1", "", 5]}, "update"),
        ({"entities": ["Goal/g1", "Patient/p9"], "patients": "not-a-list"}, "search"),
        ({"entities": ["Encounter/" + "e" * 300]}, "peer-read"),
    ],
)
def test_the_frozen_index_rows_are_the_runtime_ones(detail, subtype):
    assert frozen.entities_of(detail, subtype) == runtime_chain.entities_of(detail, subtype)


def test_the_store_never_imports_the_audit_package():
    import ast

    store = Path(__file__).resolve().parents[2] / "service" / "store"
    found = []
    for path in sorted(store.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            names += [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            found += [f"{path.relative_to(store)}: {name}" for name in names if name.startswith("service.audit")]
    assert found == []
