"""`peerlink match` on the seeded demo program: the ranked specialists with reasons, the proposal."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from service.cli import app
from service.cli.seed import seed_demo
from service.records.matching import queue
from service.settings import get_settings
from service.store import Database
from service.store.migrate import upgrade


@pytest.fixture(scope="module")
def seeded() -> Iterator[tuple[dict[str, str], str]]:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite+aiosqlite:///{Path(folder) / 'peerlink.db'}"
        upgrade(url)

        async def seed() -> str:
            database = Database(url)
            try:
                async with database.transaction() as conn:
                    program = await seed_demo(conn)
                    assert program is not None
                    (open_referral,) = await queue(conn, program.id)
                    return open_referral.id
            finally:
                await database.dispose()

        referral_id = asyncio.run(seed())
        get_settings.cache_clear()
        yield {"PEERLINK_DATABASE_URL": url, "PEERLINK_DEFAULT_PROGRAM": "demo"}, referral_id
        get_settings.cache_clear()


def run(env: dict[str, str], *args: str):
    get_settings.cache_clear()
    return CliRunner().invoke(app, ["match", *args], env=env)


def test_match_referral_prints_the_ranking_with_reasons(seeded):
    env, referral_id = seeded
    result = run(env, "referral", referral_id)
    assert result.exit_code == 0, result.output
    assert f"referral {referral_id}" in result.stdout
    assert "1. " in result.stdout and "slots free" in result.stdout
    ranking = json.loads(run(env, "referral", referral_id, "--json").stdout)
    assert ranking["matches"][0]["rank"] == 1
    assert len(ranking["matches"]) + len(ranking["excluded"]) == 3  # the demo's three specialists


def test_match_plan_proposes_and_compares(seeded):
    env, referral_id = seeded
    result = run(env, "plan")
    assert result.exit_code == 0, result.output
    assert "open queue: 1 referrals" in result.stdout
    assert "batch   1 assigned" in result.stdout and "greedy  1 assigned" in result.stdout
    plan = json.loads(run(env, "plan", "--json").stdout)
    assert plan["proposal"] is True
    assert [a["referral_id"] for a in plan["batch"]["assignments"]] == [referral_id]


def test_an_unknown_referral_or_a_bad_matching_folder_exits_with_a_message(seeded, tmp_path: Path):
    env, _ = seeded
    missing = run(env, "referral", "nope")
    assert missing.exit_code != 0
    (tmp_path / "weights.toml").write_text("source = 1\n")
    bad = run({**env, "PEERLINK_MATCHING_DIR": str(tmp_path)}, "plan")
    assert bad.exit_code == 1
    assert "weights.toml" in bad.output
