"""`peerlink import` and `peerlink import-template` end to end: real processes on a temporary SQLite file."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest
from openpyxl import load_workbook
from typer.testing import CliRunner, Result

from service.cli import app
from service.domain import ProgramFields
from service.records.programs import create_program
from service.settings import get_settings
from service.store import Database
from tests.e2e.gateway import PEERLINK
from tests.imports.support import csv_bytes, participant, table

pytestmark = pytest.mark.e2e


@pytest.fixture
def env(tmp_path: Path, sqlite_template: Path) -> dict[str, str]:
    path = tmp_path / "peerlink.db"
    shutil.copy(sqlite_template, path)
    url = f"sqlite+aiosqlite:///{path}"

    async def program() -> None:
        database = Database(url)
        try:
            async with database.transaction() as conn:
                fields = ProgramFields(code="harbor", name="Harbor", identifier_system="https://harbor.example.org/ids")
                await create_program(conn, fields)
        finally:
            await database.dispose()

    asyncio.run(program())
    return {
        **os.environ,
        "PEERLINK_DATABASE_URL": url,
        "PEERLINK_DEFAULT_PROGRAM": "harbor",
        "PEERLINK_LOG_LEVEL": "WARNING",
    }


def peerlink(env: dict[str, str], *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PEERLINK, *map(str, args)], env=env, capture_output=True, text=True, timeout=120)


def count(env: dict[str, str], table_name: str) -> int:
    with sqlite3.connect(env["PEERLINK_DATABASE_URL"].removeprefix("sqlite+aiosqlite:///")) as conn:
        return int(conn.execute(f"SELECT count(*) FROM {table_name}").fetchone()[0])


def test_template_dry_run_import_and_reimport(env, tmp_path):
    template = tmp_path / "people.csv"
    done = peerlink(env, "import-template", "--kind", "participants", "--format", "csv", "--out", template)
    assert done.returncode == 0, done.stderr
    assert template.read_text().splitlines()[0].startswith("external_id,family_name,given_names,birth_date")

    dry = peerlink(env, "import", template, "--kind", "participants", "--dry-run")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert "1 rows read, would create 1" in dry.stdout and "dry run: nothing was written" in dry.stdout
    assert count(env, "participants") == 0

    done = peerlink(env, "import", template, "--kind", "participants", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert (report["created"], report["already_imported"], report["applied"], report["problems"]) == (1, 0, True, [])
    assert (count(env, "participants"), count(env, "import_rows"), count(env, "audit_log")) == (1, 1, 1)


def test_a_bad_row_exits_1_and_writes_nothing(env, tmp_path):
    rows = [participant("P-1", "Ulver"), participant("P-2", "Vance", birth_date="31/12/1990")]  # one bad row
    sheet = tmp_path / "people.csv"
    sheet.write_bytes(csv_bytes(table("participants", rows)))
    done = peerlink(env, "import", sheet, "--kind", "participants")
    assert done.returncode == 1
    assert "row 3, birth_date: Input should be a valid date" in done.stdout
    assert "nothing was imported" in done.stdout and "31/12/1990" not in done.stdout + done.stderr
    assert count(env, "participants") == 0 and count(env, "import_rows") == 0


def in_process(env: dict[str, str], *args: str | Path) -> Result:
    get_settings.cache_clear()
    try:
        return CliRunner().invoke(app, list(map(str, args)), env=env)
    finally:
        get_settings.cache_clear()


def test_unusable_files_and_options_exit_2(env, tmp_path):
    odt = tmp_path / "people.ods"
    odt.write_bytes(b"whatever")
    done = in_process(env, "import", odt, "--kind", "participants")
    assert done.exit_code == 2 and "must be a .csv or an .xlsx" in done.stderr
    assert done.exception is None or isinstance(done.exception, SystemExit)
    done = in_process(env, "import", odt, "--kind", "goals")
    assert done.exit_code == 2 and "--kind is one of: participants, specialists, sessions" in done.stderr
    done = in_process(env, "import", tmp_path / "missing.csv", "--kind", "participants")
    assert done.exit_code == 2 and "cannot read" in done.stderr
    done = in_process(env, "import-template", "--kind", "participants", "--format", "ods", "--out", odt)
    assert done.exit_code == 2 and "--format is csv or xlsx" in done.stderr
    done = in_process(env, "import", odt, "--kind", "participants", "--program", "nowhere")
    assert done.exit_code == 2 and "peerlink import:" in done.stderr


def test_xlsx_templates_through_the_command(env, tmp_path):
    for kind in ("participants", "specialists", "sessions"):
        template = tmp_path / f"{kind}.xlsx"
        assert in_process(env, "import-template", "--kind", kind, "--format", "xlsx", "--out", template).exit_code == 0
        assert load_workbook(template, read_only=True).sheetnames == [kind, "columns"]
        done = in_process(env, "import", template, "--kind", kind)
        assert done.exit_code == 0, done.stdout + done.stderr
        assert "created 1" in done.stdout
    assert (count(env, "participants"), count(env, "specialists"), count(env, "encounters"), count(env, "notes")) == (
        1,
        1,
        1,
        1,
    )
