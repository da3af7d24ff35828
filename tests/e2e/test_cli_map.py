"""`peerlink map` previews the FHIR of stored records, as an integrator would run it."""

import asyncio
import json
import subprocess

import pytest

from service.store import Database
from service.store.tables import encounters, notes, participants, referrals, specialists
from tests.e2e.gateway import PEERLINK, seeded_env

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    env = seeded_env(tmp_path_factory.mktemp("map"))
    url = env["PEERLINK_DATABASE_URL"]

    async def first_ids() -> dict[str, str]:
        database = Database(url)
        try:
            async with database.transaction() as conn:
                found = {}
                for kind, table in (
                    ("participant", participants),
                    ("specialist", specialists),
                    ("encounter", encounters),
                    ("note", notes),
                    ("referral", referrals),
                ):
                    row = (await conn.execute(table.select().order_by(table.c.pk.desc()))).first()
                    assert row is not None
                    found[kind] = row.id
                return found
        finally:
            await database.dispose()

    return env, asyncio.run(first_ids())


def run_map(env, *args):
    return subprocess.run([PEERLINK, "map", *args], env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    ("kind", "resource_type"),
    [
        ("participant", "Patient"),
        ("encounter", "Encounter"),
        ("note", "DocumentReference"),
        ("specialist", "Bundle"),
        ("referral", "Bundle"),
        ("care-team", "CareTeam"),
    ],
)
def test_map_prints_valid_fhir(seeded, kind, resource_type):
    from mappings.models import validate

    env, ids = seeded
    record_id = ids["participant" if kind == "care-team" else kind]
    result = run_map(env, kind, record_id)
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["resourceType"] == resource_type
    validate(document)


def test_map_with_an_overlay_changes_the_profiles(seeded):
    env, ids = seeded
    generic = json.loads(run_map(env, "participant", ids["participant"]).stdout)
    epic = json.loads(run_map(env, "participant", ids["participant"], "--profile", "epic").stdout)
    assert generic["id"] == epic["id"]
    assert generic["meta"]["profile"] != epic["meta"]["profile"]


def test_map_refuses_unknown_kind_record_and_overlay(seeded):
    env, ids = seeded
    for args in (
        ("patient", ids["participant"]),
        ("participant", "nope"),
        ("participant", ids["participant"], "--profile", "nope"),
    ):
        result = run_map(env, *args)
        assert result.returncode == 2
        assert result.stderr.startswith("peerlink map:")
