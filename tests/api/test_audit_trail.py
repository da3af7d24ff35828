"""Every API interaction leaves its audit record: reads (with the patients whose data went out) before
the answer, changes in their own transaction (a refused change leaves none), through the one writer."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from mappings.ids import fhir_id
from service.store.tables import audit_log
from tests.conftest import token_headers
from tests.factories import World, consent_body, create


async def records(database: Any, **where: str) -> list[Any]:
    query = select(audit_log).order_by(audit_log.c.seq)
    for column, value in where.items():
        query = query.where(audit_log.c[column] == value)
    async with database.read() as conn:
        return list((await conn.execute(query)).all())


def patient(program: Any, participant_id: str) -> str:
    return fhir_id(program.identifier_system, "participant", participant_id)


async def test_a_hospital_read_and_search_record_whose_data_went_out(client, database, program):
    world = await World(client).build()
    recipient = {"name": "General Hospital", "identifier": {"type": "other", "system": "urn:oid:1.2.3", "value": "gh"}}
    await create(client, "consents", consent_body(world.ids["participant"], recipient=recipient))
    hospital = await token_headers(
        client, database, program, "hospital", "system/*.rs", organization="urn:oid:1.2.3|gh"
    )
    encounter = fhir_id(program.identifier_system, "encounter", world.ids["encounter"])
    assert (await client.get(f"/fhir/Encounter/{encounter}", headers=hospital)).status_code == 200
    search = await client.get("/fhir/Encounter", params={"_include": "Encounter:patient"}, headers=hospital)
    assert search.status_code == 200
    (read,) = await records(database, subtype="read", client_id="hospital")
    assert read.type == "rest" and read.action == "R" and read.outcome == "0"
    assert read.organization == "urn:oid:1.2.3|gh"
    assert read.detail["patients"] == [patient(program, world.ids["participant"])]
    assert read.detail["entities"] == [f"Encounter/{encounter}"]
    (found,) = await records(database, subtype="search", client_id="hospital")
    assert found.action == "E" and found.detail["query"].startswith("Encounter?")
    assert found.detail["patients"] == [patient(program, world.ids["participant"])]


async def test_a_peer_change_is_recorded_with_it_and_a_refused_one_is_not(client, database, program):
    world = await World(client).build()
    before = len(await records(database, subtype="peer-update"))
    changed = await client.patch(f"/peer/v1/goals/{world.ids['goal']}", json={"status": "achieved"})
    assert changed.status_code == 200, changed.text
    refused = await client.patch(f"/peer/v1/goals/{world.ids['goal']}", json={"status": "no-such-status"})
    assert refused.status_code == 422
    updates = await records(database, subtype="peer-update")
    assert len(updates) == before + 1
    assert updates[-1].detail["patients"] == [patient(program, world.ids["participant"])]
    creates = await records(database, subtype="peer-create", client_id="program-admin")
    assert len(creates) == 8  # the world's eight records


async def test_reads_of_the_peer_api_and_history_are_recorded(client, database, program):
    world = await World(client).build()
    await client.get(f"/peer/v1/participants/{world.ids['participant']}")
    await client.get("/peer/v1/encounters", params={"participant_id": world.ids["participant"]})
    await client.get("/fhir/Encounter/_history")
    (read,) = await records(database, subtype="peer-read")
    assert read.detail["patients"] == [patient(program, world.ids["participant"])]
    (listed,) = await records(database, subtype="peer-list")
    assert listed.action == "E" and "participant_id=" in listed.detail["query"]
    (history,) = await records(database, subtype="history")
    assert history.detail["interaction"] == "history-type" and history.detail["entities"]


async def test_refusals_are_recorded(anonymous, database):
    assert (await anonymous.get("/fhir/Patient")).status_code == 401
    (refusal,) = await records(database, subtype="access-refused")
    assert refusal.type == "security" and refusal.outcome == "4" and refusal.detail["status"] == 401
