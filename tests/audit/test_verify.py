"""Tamper evidence: rows edited, deleted or inserted straight in SQL (the trigger disabled, as someone
with the database's keys could) are caught and named; on PostgreSQL the trigger refuses UPDATE and
DELETE; `peerlink audit verify` exits non-zero naming the record."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from service.audit.chain import record_hash
from service.audit.verify import verify
from tests.audit.conftest import problem_of, rows, tamper, write_records

PEERLINK = os.path.join(os.path.dirname(sys.executable), "peerlink")


async def test_an_untouched_log_verifies(database):
    await write_records(database, 6, patients=["p1"], entities=["Encounter/e1"])
    report = await verify(database)
    assert report.ok, report.summary()
    assert (report.live_checked, report.first_seq, report.last_seq) == (6, 1, 6)
    assert report.head_hash == (await rows(database))[-1]["hash"]
    assert report.summary().startswith("audit chain OK: 6 live records (seq 1..6)")


async def test_an_empty_log_verifies(database):
    report = await verify(database)
    assert report.ok
    assert report.last_seq is None


async def test_an_edited_row_is_named(database):
    await write_records(database, 6)
    await tamper(database, ["UPDATE audit_log SET outcome = '4' WHERE seq = 4"])
    report = await verify(database)
    assert not report.ok
    assert (problem_of(report).seq, problem_of(report).kind) == (4, "changed")
    assert "record 4 was changed" in report.summary()


async def test_an_edited_row_whose_hash_was_recomputed_is_caught_at_the_next_link(database):
    await write_records(database, 5)
    row = next(r for r in await rows(database) if r["seq"] == 2)
    forged = {**row, "client_id": "someone-else"}
    await tamper(
        database,
        ["UPDATE audit_log SET client_id = 'someone-else', hash = :hash WHERE seq = 2"],
        {"hash": record_hash(forged)},
    )
    report = await verify(database)
    assert not report.ok
    assert problem_of(report).seq == 3
    assert "record 2 was changed and its hash recomputed" in problem_of(report).message


async def test_a_deleted_row_is_named(database):
    await write_records(database, 6, patients=["p1"])
    await tamper(database, ["DELETE FROM audit_entities WHERE seq = 3", "DELETE FROM audit_log WHERE seq = 3"])
    report = await verify(database)
    assert not report.ok
    assert (problem_of(report).seq, problem_of(report).kind) == (3, "removed")
    assert "record 3 was removed" in report.summary()


async def test_an_inserted_row_is_named(database):
    """A forged record given a correct hash and linked to its predecessor, the later rows renumbered
    to make room: the first record that links past it exposes it."""
    await write_records(database, 5)
    original = await rows(database)
    forged = {**original[1], "seq": 3, "client_id": "intruder", "prev_hash": original[1]["hash"]}
    forged["hash"] = record_hash(forged)
    await tamper(
        database,
        [
            "UPDATE audit_log SET seq = -seq WHERE seq >= 3",
            "UPDATE audit_log SET seq = 1 - seq WHERE seq < 0",
            "INSERT INTO audit_log (seq, recorded, program_id, type, subtype, action, outcome, client_id, "
            "organization, address, detail, prev_hash, hash) SELECT 3, recorded, program_id, type, subtype, "
            "action, outcome, 'intruder', organization, address, detail, :prev, :hash FROM audit_log WHERE seq = 2",
        ],
        {"prev": forged["prev_hash"], "hash": forged["hash"]},
    )
    assert [r["client_id"] for r in await rows(database)][2] == "intruder"
    report = await verify(database)
    assert not report.ok
    assert (problem_of(report).seq, problem_of(report).kind) == (3, "inserted")


async def test_a_row_appended_behind_the_writers_back_is_named(database):
    await write_records(database, 4)
    await tamper(
        database,
        [
            "INSERT INTO audit_log (seq, recorded, program_id, type, subtype, action, outcome, client_id, "
            "organization, address, detail, prev_hash, hash) SELECT 5, recorded, program_id, type, subtype, "
            "action, outcome, client_id, organization, address, detail, prev_hash, hash FROM audit_log WHERE seq = 2"
        ],
    )
    report = await verify(database)
    assert (problem_of(report).seq, problem_of(report).kind) == (5, "inserted")


async def test_a_changed_search_index_is_named(database):
    await write_records(database, 4, patients=["p1"])
    await tamper(database, ["DELETE FROM audit_entities WHERE seq = 2"])
    report = await verify(database)
    assert (problem_of(report).seq, problem_of(report).kind) == (2, "index")


async def test_a_head_noted_earlier_catches_a_cut_off_tail(database):
    await write_records(database, 5)
    head = (5, (await rows(database))[-1]["hash"])
    assert (await verify(database, head=head)).ok
    await tamper(database, ["DELETE FROM audit_log WHERE seq >= 4"])
    assert (await verify(database)).ok  # a chain alone cannot see it ...
    report = await verify(database, head=head)  # ... a head kept elsewhere can
    assert (problem_of(report).seq, problem_of(report).kind) == (4, "removed")


async def test_postgresql_refuses_update_and_delete(database):
    if database.is_sqlite:
        pytest.skip("the append-only trigger is PostgreSQL's")
    await write_records(database, 2, patients=["p1"])
    for statement in (
        "UPDATE audit_log SET outcome = '4' WHERE seq = 1",
        "DELETE FROM audit_log WHERE seq = 2",
        "DELETE FROM audit_entities",
        "UPDATE audit_entities SET ref = 'x'",
        "TRUNCATE audit_log CASCADE",
    ):
        with pytest.raises(DBAPIError, match="append-only"):
            await _execute(database, statement)
    assert len(await rows(database)) == 2
    # the archiver's rule: deleting is allowed in a transaction that says so
    await _execute(
        database, ARCHIVING, "DELETE FROM audit_entities WHERE seq = 1", "DELETE FROM audit_log WHERE seq = 1"
    )
    with pytest.raises(DBAPIError, match="append-only"):
        await _execute(database, ARCHIVING, "UPDATE audit_log SET outcome = '4'")
    # the setting does not outlive its transaction
    with pytest.raises(DBAPIError, match="append-only"):
        await _execute(database, "DELETE FROM audit_log")


ARCHIVING = "SET LOCAL peerlink.audit_archive = 'on'"


async def _execute(database, *statements: str) -> None:
    async with database.transaction() as conn:
        for statement in statements:
            await conn.execute(text(statement))


def _cli(database, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PEERLINK_DATABASE_URL": database.url.render_as_string(hide_password=False)}
    return subprocess.run([PEERLINK, "audit", *args], env=env, capture_output=True, text=True, timeout=120)


async def test_the_verify_command_exits_non_zero_naming_the_record(database):
    from service.cli import app

    if not any(getattr(group, "name", None) == "audit" for group in app.registered_groups):
        pytest.skip("peerlink audit is not wired into the service.cli app yet (app.add_typer(audit_app, name='audit'))")
    await write_records(database, 3)
    done = _cli(database, "verify")
    assert done.returncode == 0, done.stderr
    assert "audit chain OK: 3 live records" in done.stdout
    await tamper(database, ["UPDATE audit_log SET address = '10.9.9.9' WHERE seq = 2"])
    done = _cli(database, "verify")
    assert done.returncode == 1
    assert "record 2 was changed" in done.stderr


async def test_the_verify_command_in_process(database, monkeypatch, capsys):
    """The same through the typer app directly (works before service/cli/__init__.py includes it)."""
    from typer.testing import CliRunner

    from service.cli.audit import audit_app
    from service.settings import get_settings

    monkeypatch.setenv("PEERLINK_DATABASE_URL", database.url.render_as_string(hide_password=False))
    get_settings.cache_clear()
    try:
        await write_records(database, 3)
        head = f"3:{(await rows(database))[-1]['hash']}"
        await database.dispose()  # the command runs its own event loop and engine
        runner = CliRunner()
        ok = await _in_thread(runner.invoke, audit_app, ["verify", "--head", head])
        assert ok.exit_code == 0, ok.output
        assert "audit chain OK" in ok.output
        await tamper(database, ["DELETE FROM audit_log WHERE seq = 2"])
        broken = await _in_thread(runner.invoke, audit_app, ["verify"])
        assert broken.exit_code == 1
        assert "record 2 was removed" in broken.output
        bad = await _in_thread(runner.invoke, audit_app, ["verify", "--head", "nonsense"])
        assert bad.exit_code == 2
    finally:
        get_settings.cache_clear()


async def _in_thread(function, *args):
    import asyncio

    return await asyncio.to_thread(function, *args)
