"""The sandbox EHR (in process) loses everything PeerLink delivered (a test system that was reset);
`peerlink ehr resync` gives it back: every resource arrives again, exactly once, under the same id."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import select

from service.auth.backend_client import load_private_key, public_jwks
from service.auth.keys import SigningKeys
from service.exchange.worker import Worker
from service.sandbox import ClientRegistration
from service.store.tables import ehr_resources
from tests.exchange.support import HOSPITAL_KEY, add_connection, consented_session, fast_settings, private_key_file
from tests.sandbox.support import ROOT, Harness, build


@pytest.fixture
async def sandbox(tmp_path: Path):
    keys = tmp_path / "sandbox-keys"
    SigningKeys(keys).ensure()
    harness = build(keys)
    yield harness
    await harness.http.aclose()


@pytest.fixture
async def connected(sandbox: Harness, database, program, tmp_path: Path) -> Path:
    """The gateway is a client of the sandbox, and the connection ``hospital`` points at it."""
    key_file = private_key_file(tmp_path)
    jwks = public_jwks(load_private_key(key_file.read_bytes()))
    sandbox.sandbox.register_client(
        ClientRegistration.model_validate({"client_id": "peerlink", "scopes": "system/*.cruds", "jwks": jwks})
    )
    await add_connection(
        database, program, tmp_path, base_url=f"{ROOT}{sandbox.fhir}", organization=HOSPITAL_KEY, key_file=str(key_file)
    )
    return key_file


async def delivered(database) -> dict[str, str]:
    """Our reference -> the EHR's id, of everything PeerLink believes the EHR holds."""
    e = ehr_resources.c
    async with database.read() as conn:
        rows = await conn.execute(select(e.resource_type, e.resource_id, e.ehr_id).where(e.connection == "hospital"))
        return {f"{r.resource_type}/{r.resource_id}": f"{r.resource_type}/{r.ehr_id}" for r in rows}


def versions(sandbox: Harness, references: list[str]) -> dict[str, int | None]:
    """The sandbox's current version of each resource (None: it does not hold it)."""
    found: dict[str, int | None] = {}
    for reference in references:
        resource_type, resource_id = reference.split("/", 1)
        current = sandbox.sandbox.store.current(resource_type, resource_id)
        found[reference] = current.version_id if current is not None and current.resource is not None else None
    return found


async def test_a_reset_sandbox_gets_everything_back_exactly_once_after_resync(
    sandbox, connected, client, database, settings
):
    for _ in range(3):
        await consented_session(client)
    worker = Worker(database, fast_settings(settings), transport=sandbox.transport)
    assert await worker.drain() == 6
    held = await delivered(database)
    at_ehr = sorted(held.values())
    assert {r.split("/")[0] for r in at_ehr} >= {"Patient", "Encounter", "DocumentReference"}
    assert set(versions(sandbox, at_ehr).values()) == {1}

    await sandbox.admin.reset()  # the EHR lost what PeerLink sent it
    assert set(versions(sandbox, at_ehr).values()) == {None}
    seeded = sandbox.sandbox.store.counts()
    assert await worker.drain() == 0  # PeerLink still believes it delivered everything

    from typer.testing import CliRunner

    from service.cli.exchange import ehr_app
    from service.settings import get_settings

    get_settings.cache_clear()
    env = {"PEERLINK_DATABASE_URL": settings.database_url}
    try:
        done = await asyncio.to_thread(CliRunner().invoke, ehr_app, ["resync", "hospital"], env=env)
    finally:
        get_settings.cache_clear()
    assert done.exit_code == 0, done.output
    assert f"{len(held)} delivered resource(s) forgotten, 6 change(s) queued" in done.output

    assert await worker.drain() == 6
    assert await delivered(database) == held  # the same ids at the EHR
    assert versions(sandbox, at_ehr) == dict.fromkeys(at_ehr, 1)  # every resource back, written once
    counts = sandbox.sandbox.store.counts()  # nothing twice: the seed plus ours, per type
    assert counts == {t: n + sum(r.startswith(f"{t}/") for r in at_ehr) for t, n in seeded.items()}
