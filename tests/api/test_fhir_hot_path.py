"""The hot FHIR paths (service.api.fhir.hot): a token's repeated reads and searches skip the routing
and dependency solving, and answer exactly what the normal path answers, with the same checks."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from sqlalchemy import select, update

from mappings.ids import fhir_id
from service.api import access as access_module
from service.api.fhir.hot import HotPaths
from service.store.tables import audit_log, auth_clients
from tests.conftest import token_headers
from tests.factories import World


def _hot(http: httpx.AsyncClient) -> HotPaths:
    """The app's HotPaths middleware (built on the first request)."""
    app: Any = http._transport.app  # type: ignore[attr-defined]
    layer = app.middleware_stack
    while not isinstance(layer, HotPaths):
        layer = layer.app
    return layer


async def _patient(client: httpx.AsyncClient, program: Any) -> str:
    world = await World(client).build()
    return fhir_id(program.identifier_system, "participant", world.ids["participant"])


async def _reads(database: Any, client_id: str) -> list[Any]:
    query = select(audit_log).where(audit_log.c.subtype == "read", audit_log.c.client_id == client_id)
    async with database.read() as conn:
        return list((await conn.execute(query)).all())


async def test_a_repeated_read_is_hot_and_answers_what_the_normal_path_answers(client, database, program):
    patient = await _patient(client, program)
    normal = await client.get(f"/fhir/Patient/{patient}")
    assert ("Patient", 2) in _hot(client).routes  # learned from the router's choice
    hot = await client.get(f"/fhir/Patient/{patient}")
    assert hot.status_code == normal.status_code == 200
    assert hot.content == normal.content
    for header in ("content-type", "content-length", "etag", "last-modified"):
        assert hot.headers[header] == normal.headers[header]
    assert hot.headers["x-request-id"] != normal.headers["x-request-id"]
    # every answer has its own audit record, written before it went out
    assert len(await _reads(database, "program-admin")) == 2
    # what the hot path does not take goes the normal way: _pretty, a 404, a bad Accept
    assert (await client.get(f"/fhir/Patient/{patient}?_pretty=true")).text.startswith("{\n")
    missing = await client.get("/fhir/Patient/no-such-patient")
    assert missing.status_code == 404 and missing.json()["resourceType"] == "OperationOutcome"
    assert (await client.get(f"/fhir/Patient/{patient}", headers={"Accept": "application/xml"})).status_code == 406
    assert len(await _reads(database, "program-admin")) == 3  # the pretty one; refusals are no reads


async def test_the_specific_routes_stay_the_routers(client):
    await World(client).build()
    assert (await client.get("/fhir/Patient/_history")).json()["type"] == "history"
    assert (await client.get("/fhir/Patient/_history")).json()["type"] == "history"
    assert ("Subscription", 1) not in _hot(client).routes
    for _ in range(2):
        assert (await client.get("/fhir/Subscription")).status_code == 200
    assert ("Subscription", 1) not in _hot(client).routes


async def test_a_repeated_search_is_hot_and_refuses_what_the_normal_path_refuses(client, database, program):
    await _patient(client, program)
    first = await client.get("/fhir/Encounter?_count=1")
    again = await client.get("/fhir/Encounter?_count=1")
    assert ("Encounter", 1) in _hot(client).routes
    assert again.status_code == 200 and again.json()["entry"] == first.json()["entry"]
    bad = await client.get("/fhir/Encounter?no-such-param=1")
    assert bad.status_code == 400 and bad.json()["resourceType"] == "OperationOutcome"
    other_program = await client.get("/fhir/Encounter", headers={"PeerLink-Program": "another"})
    assert other_program.status_code == 403


async def test_scopes_hold_on_the_hot_path(client, database, program):
    patient = await _patient(client, program)
    headers = await token_headers(client, database, program, "patients-only", "system/Patient.rs")
    for _ in range(3):
        assert (await client.get(f"/fhir/Patient/{patient}", headers=headers)).status_code == 200
        assert (await client.get("/fhir/Patient", headers=headers)).status_code == 200
        assert (await client.get("/fhir/Encounter", headers=headers)).status_code == 403
        assert (await client.get(f"/fhir/Encounter/{patient}", headers=headers)).status_code == 403
    assert (await client.get("/fhir/Patient")).status_code == 200  # without the header: the admin client


async def test_a_disabled_clients_token_stops_at_once(client, database, program):
    patient = await _patient(client, program)
    headers = await token_headers(client, database, program, "soon-disabled", "system/Patient.rs")
    for _ in range(3):
        assert (await client.get(f"/fhir/Patient/{patient}", headers=headers)).status_code == 200
    assert (await client.post("/admin/v1/clients/soon-disabled/disable")).status_code == 200
    assert (await client.get(f"/fhir/Patient/{patient}", headers=headers)).status_code == 401
    assert (await client.get("/fhir/Patient", headers=headers)).status_code == 401


async def test_a_client_disabled_elsewhere_stops_within_the_cache_time(client, database, program, monkeypatch):
    """Another replica (or the CLI) disabling a client: this process re-reads the registration at
    most CLIENT_CACHE_SECONDS after it last read it (here shortened to 0.3 s)."""
    monkeypatch.setattr(access_module, "CLIENT_CACHE_SECONDS", 0.3)
    monkeypatch.setattr("service.auth.runtime.CLIENT_CACHE_SECONDS", 0.3)
    patient = await _patient(client, program)
    headers = await token_headers(client, database, program, "disabled-elsewhere", "system/Patient.rs")
    for _ in range(3):
        assert (await client.get(f"/fhir/Patient/{patient}", headers=headers)).status_code == 200
    async with database.transaction() as conn:
        await conn.execute(
            update(auth_clients).where(auth_clients.c.client_id == "disabled-elsewhere").values(disabled=True)
        )
    await asyncio.sleep(0.4)
    assert (await client.get(f"/fhir/Patient/{patient}", headers=headers)).status_code == 401
    assert (await client.get("/fhir/Patient", headers=headers)).status_code == 401


async def test_hot_answers_are_counted_by_route_template(client, program):
    patient = await _patient(client, program)
    for _ in range(3):
        await client.get(f"/fhir/Patient/{patient}")
    text = (await client.get("/metrics")).text
    assert 'route="/fhir/{resource_type}/{resource_id}",status="200"} 3.0' in text
    assert patient not in text
