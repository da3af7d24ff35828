"""Retention: records older than the horizon move to NDJSON files with an anchor; the chain continues
from the anchor and still verifies, archived files included; archiving refuses a broken chain."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from sqlalchemy import select

from service.audit import write
from service.audit.archive import ArchiveRefused, ArchiveResult, archive, archive_and_record, file_name
from service.audit.chain import record_hash
from service.audit.verify import verify
from service.store.tables import audit_anchors
from tests.audit.conftest import index_rows, problem_of, record, rows, tamper, write_records

NOW = datetime.now(UTC)


def done(result: ArchiveResult | None) -> ArchiveResult:
    assert result is not None, "nothing was archived"
    return result


async def _old_and_new(database, old: int = 6, new: int = 3) -> None:
    await write_records(database, old, start=NOW - timedelta(days=400), patients=["p1"])
    await write_records(database, new, start=NOW - timedelta(days=2), patients=["p1"])


async def test_records_past_the_horizon_move_to_a_file_and_the_chain_continues(database, tmp_path):
    await _old_and_new(database)
    before = await rows(database)
    result = done(await archive(database, tmp_path, NOW - timedelta(days=365)))
    assert result is not None
    assert (result.first_seq, result.last_seq, result.count) == (1, 6, 6)
    assert result.file == tmp_path / file_name(1, 6) == tmp_path / "audit-000000000001-000000000006.ndjson"
    assert result.anchor == before[5]["hash"]

    lines = [orjson.loads(line) for line in result.file.read_bytes().splitlines()]
    assert [line["seq"] for line in lines] == [1, 2, 3, 4, 5, 6]
    assert all(record_hash(line) == line["hash"] for line in lines)  # each line verifies alone
    sidecar = orjson.loads((tmp_path / "audit-000000000001-000000000006.anchor.json").read_bytes())
    assert sidecar["anchor_hash"] == result.anchor
    assert sidecar["prev_hash"] == "0" * 64

    live = await rows(database)
    assert [r["seq"] for r in live] == [7, 8, 9]
    assert {seq for seq, _, _ in await index_rows(database)} == {7, 8, 9}
    async with database.engine.connect() as conn:
        [anchor] = (await conn.execute(select(audit_anchors))).mappings().all()
    assert (anchor["first_seq"], anchor["last_seq"], anchor["hash"]) == (1, 6, result.anchor)

    report = await verify(database)
    assert report.ok, report.summary()
    assert (report.live_checked, report.first_seq, report.anchors) == (3, 7, 1)
    full = await verify(database, archive_dir=tmp_path)
    assert full.ok, full.summary()
    assert (full.archived_checked, full.files) == (6, [result.file.name])

    await write(database, record(n="after"))
    newest = (await rows(database))[-1]
    assert newest["seq"] == 10
    assert (await verify(database, archive_dir=tmp_path)).ok


async def test_the_newest_record_always_stays_live(database, tmp_path):
    await write_records(database, 4, start=NOW - timedelta(days=500))
    result = done(await archive(database, tmp_path, NOW))
    assert (result.first_seq, result.last_seq) == (1, 3)
    assert [r["seq"] for r in await rows(database)] == [4]
    assert await archive(database, tmp_path, NOW) is None  # nothing left to archive but the tail
    assert (await verify(database, archive_dir=tmp_path)).ok


async def test_successive_archives_chain_from_one_another(database, tmp_path):
    await write_records(database, 10, start=NOW - timedelta(days=30))
    first = done(await archive(database, tmp_path, NOW - timedelta(days=30) + timedelta(minutes=4)))
    second = done(await archive(database, tmp_path, NOW - timedelta(days=1)))
    assert (first.first_seq, first.last_seq) == (1, 4)
    assert (second.first_seq, second.last_seq) == (5, 9)
    report = await verify(database, archive_dir=tmp_path)
    assert report.ok, report.summary()
    assert (report.anchors, report.archived_checked, report.live_checked) == (2, 9, 1)


async def test_archiving_refuses_a_broken_chain(database, tmp_path):
    await _old_and_new(database)
    await tamper(database, ["UPDATE audit_log SET client_id = 'x' WHERE seq = 2"])
    folder = tmp_path / "archive"
    with pytest.raises(ArchiveRefused, match="record 2 was changed"):
        await archive(database, folder, NOW - timedelta(days=365))
    assert len(await rows(database)) == 9
    assert list(folder.iterdir()) == []


async def test_a_changed_or_missing_archive_file_is_caught(database, tmp_path):
    await _old_and_new(database)
    result = done(await archive(database, tmp_path, NOW - timedelta(days=365)))
    lines = result.file.read_bytes().splitlines()

    edited = orjson.loads(lines[2])
    edited["outcome"] = "4"
    result.file.write_bytes(b"\n".join([*lines[:2], orjson.dumps(edited), *lines[3:]]) + b"\n")
    report = await verify(database, archive_dir=tmp_path)
    assert (problem_of(report).seq, problem_of(report).kind) == (3, "changed")
    assert result.file.name in problem_of(report).message

    result.file.write_bytes(b"\n".join(lines[:4]) + b"\n")
    report = await verify(database, archive_dir=tmp_path)
    assert (problem_of(report).seq, problem_of(report).kind) == (5, "removed")

    result.file.write_bytes(b"\n".join(lines) + b"\n\n")  # same records, other bytes
    report = await verify(database, archive_dir=tmp_path)
    assert problem_of(report).kind == "file"

    result.file.unlink()
    report = await verify(database, archive_dir=tmp_path)
    assert (problem_of(report).seq, problem_of(report).kind) == (1, "file")
    assert (await verify(database)).ok  # the live chain alone still verifies from its anchor


async def test_live_records_removed_after_the_anchor_are_caught(database, tmp_path):
    await _old_and_new(database)
    await archive(database, tmp_path, NOW - timedelta(days=365))
    await tamper(database, ["DELETE FROM audit_entities WHERE seq = 7", "DELETE FROM audit_log WHERE seq = 7"])
    report = await verify(database)
    assert (problem_of(report).seq, problem_of(report).kind) == (7, "removed")


async def test_a_forged_anchor_is_caught(database, tmp_path):
    await _old_and_new(database)
    await archive(database, tmp_path, NOW - timedelta(days=365))
    await tamper(database, ["UPDATE audit_anchors SET prev_hash = 'ab' WHERE last_seq = 6"])
    report = await verify(database)
    assert problem_of(report).kind == "anchor"


async def test_the_archive_run_is_audited(database, tmp_path):
    await _old_and_new(database)
    result = done(await archive_and_record(database, tmp_path, NOW - timedelta(days=365), actor="cli:officer"))
    newest = (await rows(database))[-1]
    assert (newest["type"], newest["subtype"], newest["client_id"]) == ("admin", "audit-archive", "cli:officer")
    assert newest["detail"]["anchor"] == result.anchor
    assert (await verify(database, archive_dir=tmp_path)).ok


async def test_writers_keep_going_while_the_archiver_runs(database, tmp_path):
    await write_records(database, 50, start=NOW - timedelta(days=400))

    async def writers() -> None:
        for i in range(40):
            await write(database, record(n=f"live-{i}"))

    await asyncio.gather(writers(), archive(database, tmp_path, NOW - timedelta(days=1)))
    report = await verify(database, archive_dir=tmp_path)
    assert report.ok, report.summary()
    assert report.archived_checked + report.live_checked == 90


async def test_the_archive_command(database, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from service.cli.audit import audit_app
    from service.settings import get_settings

    await _old_and_new(database)
    monkeypatch.setenv("PEERLINK_DATABASE_URL", database.url.render_as_string(hide_password=False))
    get_settings.cache_clear()
    runner = CliRunner()
    folder = tmp_path / "archive"
    try:
        done = await asyncio.to_thread(
            runner.invoke, audit_app, ["archive", "--older-than", "365", "--dir", str(folder)]
        )
        assert done.exit_code == 0, done.output
        assert "archived records 1..6 (6)" in done.output
        again = await asyncio.to_thread(
            runner.invoke, audit_app, ["archive", "--older-than", "365", "--dir", str(folder)]
        )
        assert "nothing to archive" in again.output
        verified = await asyncio.to_thread(runner.invoke, audit_app, ["verify", "--archive", str(folder)])
        assert verified.exit_code == 0, verified.output
        assert "6 archived records in 1 files" in verified.output
        (folder / file_name(1, 6)).write_text("")
        broken = await asyncio.to_thread(runner.invoke, audit_app, ["verify", "--archive", str(folder)])
        assert broken.exit_code == 1
        assert "records 1..6 were removed" in broken.output
    finally:
        get_settings.cache_clear()
