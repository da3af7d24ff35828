"""The scopes a connection needs follow from what it pushes and polls: `ehr add` asks for them by
default and warns (exit 0) when the scopes it is given leave some out; `ehr test` fails (exit 1) when
the scopes asked for, or those the EHR's token answer grants, do not cover them."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import respx

from service.exchange import connections
from tests.exchange.support import BASE, HOSPITAL_KEY, FakeEhr, add_connection, private_key_file

NO_ROLE = (
    "system/Patient.cru system/Practitioner.cru system/Organization.cru system/Encounter.cru "
    "system/DocumentReference.cru"
)
"""Everything a connection pushing encounters and notes needs but PractitionerRole."""


@pytest.fixture
def ehr():
    with respx.mock(assert_all_called=False) as router:
        yield FakeEhr(router)


@pytest.fixture
def cli(database, monkeypatch):
    from typer.testing import CliRunner

    from service.cli.exchange import ehr_app
    from service.settings import get_settings

    monkeypatch.setenv("PEERLINK_DATABASE_URL", database.url.render_as_string(hide_password=False))
    get_settings.cache_clear()
    runner = CliRunner()

    async def run(*args: str) -> Any:
        return await asyncio.to_thread(runner.invoke, ehr_app, list(args))

    yield run
    get_settings.cache_clear()


def add_args(tmp_path, name: str, *more: str) -> list[str]:
    key = private_key_file(tmp_path)
    return ["add", name, "--base-url", BASE, "--client-id", "peerlink", "--org", HOSPITAL_KEY, "--key", str(key), *more]


async def stored(database, name: str) -> connections.EhrConnection:
    async with database.read() as conn:
        return await connections.get(conn, name)


async def test_ehr_add_warns_when_the_scopes_leave_out_what_it_pushes(cli, database, program, tmp_path):
    done = await cli(*add_args(tmp_path, "narrow", "--scopes", NO_ROLE))
    assert done.exit_code == 0, done.output
    assert "connection narrow added" in done.stdout
    assert "warning" in done.stderr and "missing: system/PractitionerRole.cu" in done.stderr
    assert "system/PractitionerRole" not in done.stdout
    assert (await stored(database, "narrow")).scopes == NO_ROLE  # what was asked is kept


async def test_ehr_add_asks_for_what_it_pushes_and_polls_by_default(cli, database, program, tmp_path):
    done = await cli(*add_args(tmp_path, "derived", "--push", "care-teams,referral-status", "--poll-referrals"))
    assert done.exit_code == 0, done.output
    assert done.stderr == ""
    scopes = (await stored(database, "derived")).scopes.split()
    assert "system/CareTeam.cru" in scopes and "system/PractitionerRole.cru" in scopes
    assert "system/Task.rus" in scopes and "system/ServiceRequest.rs" in scopes
    assert "system/DocumentReference.cru" not in scopes  # notes are not pushed
    assert (await stored(database, "derived")).missing_scopes() == []


async def test_ehr_update_warns_when_new_scopes_leave_something_out(cli, database, program, tmp_path):
    await add_connection(database, program, tmp_path)
    done = await cli("update", "hospital", "--scopes", NO_ROLE)
    assert done.exit_code == 0, done.output
    assert "missing: system/PractitionerRole.cu" in done.stderr


async def test_ehr_test_fails_when_the_token_grants_less_than_it_pushes(ehr, cli, database, program, tmp_path):
    await add_connection(database, program, tmp_path)
    ehr.granted_scope = NO_ROLE  # asked for everything; the EHR granted no PractitionerRole
    done = await cli("test", "hospital")
    assert done.exit_code == 1, done.output
    assert "FAIL  scopes" in done.stdout and "system/PractitionerRole.cu" in done.stdout
    assert "PASS  access token" in done.stdout


async def test_ehr_test_fails_when_the_scopes_asked_for_leave_something_out(ehr, cli, database, program, tmp_path):
    await add_connection(database, program, tmp_path, scopes=NO_ROLE)  # the token answer names no scope
    done = await cli("test", "hospital")
    assert done.exit_code == 1, done.output
    assert "FAIL  scopes" in done.stdout and "system/PractitionerRole.cu" in done.stdout


async def test_ehr_test_passes_when_the_grant_covers_what_it_pushes(ehr, cli, database, program, tmp_path):
    await add_connection(database, program, tmp_path)
    ehr.granted_scope = "system/*.write system/Task.read"  # SMART v1 scopes are understood
    done = await cli("test", "hospital")
    assert done.exit_code == 0, done.output
    assert "PASS  scopes" in done.stdout


async def test_ehr_import_warns_for_each_connection_whose_scopes_leave_something_out(cli, database, program, tmp_path):
    import yaml

    common = {"base_url": BASE, "client_id": "peerlink", "organization": HOSPITAL_KEY}
    key = str(private_key_file(tmp_path))
    listing = tmp_path / "connections.yaml"
    entries = [
        {"name": "wide", **common, "key_file": key},
        {"name": "narrow", "scopes": NO_ROLE, **common, "key_file": key},
    ]
    listing.write_text(yaml.safe_dump(entries))
    done = await cli("import", str(listing))
    assert done.exit_code == 0, done.output
    assert "2 connection(s) added: wide, narrow" in done.stdout
    assert "narrow do not cover" in done.stderr and "wide" not in done.stderr
