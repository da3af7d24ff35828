"""`peerlink report matching` on a seeded SQLite file with the demo's open referral assigned through
matching: JSON on stdout, CSV and HTML to a file, bad options refused with a message (exit 2)."""

from __future__ import annotations

import asyncio
import csv
import json
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from typer.testing import CliRunner

from service.cli import app
from service.cli.seed import seed_demo
from service.domain.matching.config import load_config
from service.domain.referral import ReferralAction, TransitionRequest
from service.records.matching import assign, matches, queue
from service.records.operations import transition_referral
from service.reports.matching_render import COLUMNS
from service.settings import get_settings
from service.store import Database
from service.store.migrate import upgrade


@pytest.fixture(scope="module")
def seeded_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('matching') / 'peerlink.db'}"
    upgrade(url)

    async def seed() -> None:
        database = Database(url)
        try:
            async with database.transaction() as conn:
                program = await seed_demo(conn)
                assert program is not None
                (referral,) = await queue(conn, program.id)
                config = load_config()
                received = TransitionRequest(by="intake")
                await transition_referral(
                    conn, program.id, referral.id, ReferralAction.RECEIVE, received, expected_version=None
                )
                _, ranking = await matches(conn, program, referral.id, config, datetime.now(UTC).date())
                done = await assign(
                    conn,
                    program,
                    referral.id,
                    ranking.matches[0].specialist_id,
                    reason="top match",
                    by="supervisor",
                    config=config,
                    expected_version=None,
                    now=datetime.now(UTC),
                )
                assert done.referral.match is not None and done.referral.match.rank == 1
        finally:
            await database.dispose()

    asyncio.run(seed())
    get_settings.cache_clear()
    yield {"PEERLINK_DATABASE_URL": url, "PEERLINK_DEFAULT_PROGRAM": "demo"}
    get_settings.cache_clear()


def run(env: dict[str, str], *args: str):
    get_settings.cache_clear()
    return CliRunner().invoke(app, ["report", "matching", *args], env=env)


def test_json_on_standard_output(seeded_env):
    result = run(seeded_env)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["title"] == "Matching evidence report" and report["program"]["code"] == "demo"
    program = next(r for r in report["rows"] if r["group_by"] == "program")
    assert program["assignments"] == "suppressed"  # one assignment: far under 11
    weights = report["suggested_weights"]
    assert weights["status"] == "not enough history" and weights["applied"] is False
    assert [w["configured"] for w in weights["weights"]] == [3.0, 2.0, 2.0, 1.5, 1.0, 0.5]


def test_csv_and_html_to_a_file(seeded_env, tmp_path):
    out = tmp_path / "matching.csv"
    result = run(seeded_env, "--format", "csv", "--out", str(out), "--from", "2026-01-01", "--to", "2026-12-31")
    assert result.exit_code == 0, result.output
    assert "matching report (csv, 2026-01-01 to 2026-12-31)" in result.stderr
    rows = list(csv.DictReader(out.open()))
    assert list(rows[0]) == COLUMNS and {r["section"] for r in rows} == {"groups", "weights"}
    page = tmp_path / "matching.html"
    assert run(seeded_env, "--format", "html", "--out", str(page)).exit_code == 0
    text = page.read_text()
    assert text.startswith("<!DOCTYPE html>") and "data:image/png;base64," in text and "never applied" in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--format", "pdf"], "--format is json, csv or html"),
        (["--from", "2026-13-01"], "--from is a day"),
        (["--from", "2026-05-01", "--to", "2026-04-30"], "starts after it ends"),
    ],
)
def test_bad_options_are_refused(seeded_env, args, message):
    result = run(seeded_env, *args)
    assert result.exit_code == 2 and message in result.output
