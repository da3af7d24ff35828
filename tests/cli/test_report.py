"""`peerlink report outcomes` on a seeded SQLite file: JSON on stdout, CSV and HTML to a file, and
bad options refused with a message (exit 2)."""

from __future__ import annotations

import asyncio
import csv
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from service.cli import app
from service.cli.seed import seed_demo
from service.settings import get_settings
from service.store import Database
from service.store.migrate import upgrade


@pytest.fixture(scope="module")
def seeded_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('report') / 'peerlink.db'}"
    upgrade(url)

    async def seed() -> None:
        database = Database(url)
        try:
            async with database.transaction() as conn:
                assert await seed_demo(conn) is not None
        finally:
            await database.dispose()

    asyncio.run(seed())
    get_settings.cache_clear()
    yield {"PEERLINK_DATABASE_URL": url, "PEERLINK_DEFAULT_PROGRAM": "demo"}
    get_settings.cache_clear()


def run(env: dict[str, str], *args: str):
    get_settings.cache_clear()
    return CliRunner().invoke(app, ["report", "outcomes", *args], env=env)


def test_json_on_standard_output(seeded_env):
    result = run(seeded_env)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    phq9 = next(r for r in report["outcomes"] if r["instrument"] == "phq-9" and r["group_by"] == "program")
    assert phq9["participants"] == 12 and isinstance(phq9["mean_change"], float)


def test_csv_and_html_to_a_file(seeded_env, tmp_path: Path):
    table = tmp_path / "outcomes.csv"
    result = run(seeded_env, "--format", "csv", "--from", "2026-01-01", "--to", "2026-12-31", "--out", str(table))
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(table.open()))
    assert {r["section"] for r in rows} == {"outcomes", "engagement"}
    assert {(r["period_from"], r["period_to"]) for r in rows} == {("2026-01-01", "2026-12-31")}
    page = tmp_path / "outcomes.html"
    assert run(seeded_env, "--format", "html", "--out", str(page)).exit_code == 0
    assert page.read_text().count("data:image/png;base64,") == 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--format", "pdf"], "--format is json, csv or html"),
        (["--from", "2026-02-30"], "--from is a day, YYYY-MM-DD"),
        (["--from", "2026-05-01", "--to", "2026-04-01"], "the period starts after it ends"),
        (["--program", "nowhere"], "peerlink report: no program with that code"),
    ],
)
def test_bad_options_are_refused_with_a_message(seeded_env, args, message):
    result = run(seeded_env, *args)
    assert result.exit_code == 2
    assert message in result.stderr
