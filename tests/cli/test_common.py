"""service.cli.common: the helpers every command group shares, and the app the console script runs."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from service.cli import app
from service.cli.common import configured_settings, fail, find_program_id, with_database, with_open_database
from service.domain.errors import NotFound
from service.settings import Settings


def sqlite_settings(tmp_path) -> Settings:
    return Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}")


def test_fail_prints_on_stderr_and_gives_the_exit(capsys):
    exit_ = fail("no such thing")
    assert isinstance(exit_, typer.Exit)
    assert exit_.exit_code == 2
    assert fail("broken", 1).exit_code == 1
    captured = capsys.readouterr()
    assert captured.err == "no such thing\nbroken\n"
    assert captured.out == ""


def test_with_open_database_returns_the_work_and_disposes(tmp_path):
    seen = []

    async def work(database):
        seen.append(database)
        return 41 + 1

    assert with_open_database(sqlite_settings(tmp_path), work) == 42
    assert len(seen) == 1


def test_a_peerlink_error_exits_with_its_detail_and_the_prefix(tmp_path, capsys):
    async def work(database):
        raise NotFound("program nowhere not found")

    with pytest.raises(typer.Exit) as raised:
        with_open_database(sqlite_settings(tmp_path), work, prefix="peerlink audit")
    assert raised.value.exit_code == 2
    assert capsys.readouterr().err == "peerlink audit: program nowhere not found\n"


def test_with_database_runs_in_a_transaction_and_fails_like_the_commands(tmp_path, capsys):
    from sqlalchemy import text

    async def work(conn):
        assert conn.in_transaction()
        return (await conn.execute(text("SELECT 7"))).scalar_one()

    settings = sqlite_settings(tmp_path)
    assert with_database(settings, work) == 7

    async def missing(conn):
        return await find_program_id(conn, "no-such-program")

    from service.store.migrate import upgrade

    upgrade(settings.database_url)
    with pytest.raises(typer.Exit):
        with_database(settings, missing)
    assert capsys.readouterr().err.startswith("peerlink: ")


def test_configured_settings_are_the_settings(monkeypatch):
    monkeypatch.setenv("PEERLINK_DEFAULT_PROGRAM", "cli-test-program")
    from service.settings import get_settings

    get_settings.cache_clear()
    try:
        assert configured_settings().default_program == "cli-test-program"
    finally:
        get_settings.cache_clear()


def test_the_app_has_every_documented_command():
    result = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for command in (
        "clients",
        "keys",
        "token",
        "ehr",
        "deadletters",
        "worker",
        "sandbox",
        "check",
        "up",
        "audit",
        "migrate",
        "seed",
        "serve",
        "map",
        "openapi",
    ):
        assert f"│ {command} " in result.output, command
