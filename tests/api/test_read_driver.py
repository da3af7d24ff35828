"""The hot read by id past SQLAlchemy (on PostgreSQL the asyncpg connection of the read pool, on a
SQLite file the loop reader): the same resource as the general read, and reads that carry on after
the server closed the pooled connections."""

import asyncio
from datetime import timedelta

import asyncpg
import pytest

from mappings.ids import fhir_id
from service.audit import AuditRecord, write
from service.domain.errors import NotFound
from service.fhir import repository
from tests.factories import World, consent_body, create


async def test_the_hot_read_is_the_general_read(client, program, database):
    world = await World(client).build()
    fid = fhir_id(program.identifier_system, "participant", world.ids["participant"])
    hot = await repository.read_current(database, program.id, "Patient", fid)
    async with database.read() as conn:
        general = await repository.current(conn, program.id, "Patient", fid)
    assert hot == general
    assert hot.last_updated.utcoffset() == timedelta(0)
    assert isinstance(hot.body, bytes) and hot.patient_id == fid
    response = await client.get(f"/fhir/Patient/{fid}")
    assert response.status_code == 200 and response.content == hot.body
    with pytest.raises(NotFound):
        await repository.read_current(database, program.id, "Patient", "no-such-patient")
    with pytest.raises(NotFound):  # another program's resource is not found
        await repository.read_current(database, "another-program", "Patient", fid)


async def test_reads_and_audit_records_carry_on_after_the_server_closed_the_connections(database, program):
    if database.is_sqlite:
        pytest.skip("a server closing pooled connections: PostgreSQL only")
    await asyncio.gather(*(_missing(database, program.id) for _ in range(6)))  # pooled read connections
    admin = await asyncpg.connect(database.url.set(drivername="postgresql").render_as_string(hide_password=False))
    try:
        closed = await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    finally:
        await admin.close()
    assert closed >= 1
    await asyncio.sleep(0.3)  # the event loop sees the sockets close
    await asyncio.gather(*(_missing(database, program.id) for _ in range(6)))
    await write(database, AuditRecord("rest", "read", "R", "0", program_id=program.id))


async def _missing(database, program_id: str) -> None:
    with pytest.raises(NotFound):
        await repository.read_current(database, program_id, "Patient", "no-such-patient")


async def test_keyed_statements_are_planned_once_per_session(database):
    """Migration 0016 plans every execution for its values (searches); the driver's sessions plan a
    keyed statement once, whatever its values (service.store.driver_pool)."""
    if database.is_sqlite:
        pytest.skip("plan_cache_mode: PostgreSQL only")
    async with database.driver() as connection:
        assert await connection.fetchval("SHOW plan_cache_mode") == "force_generic_plan"
    async with database.driver(database.audit_engine) as connection:
        assert await connection.fetchval("SHOW plan_cache_mode") == "force_generic_plan"
    async with database.read() as conn:
        assert (await conn.exec_driver_sql("SHOW plan_cache_mode")).scalar() == "force_custom_plan"
    async with database.driver(database.read_engine) as connection:  # another engine: its own pool's
        assert await connection.fetchval("SHOW plan_cache_mode") == "force_custom_plan"


async def test_a_partners_read_is_the_general_read_inside_its_boundary(client, program, database):
    """A partner's read by id (a kept statement with the consent boundary, on PostgreSQL on the driver's
    sessions) finds what the general read finds inside the boundary, and nothing outside it."""
    world = await World(client).build()
    hospital = "urn:oid:2.16.840.1.113883.3.7001|general-hospital"
    system_, value = hospital.split("|")
    recipient = {"name": "General Hospital", "identifier": {"type": "other", "system": system_, "value": value}}
    await create(client, "consents", consent_body(world.ids["participant"], recipient=recipient))
    system = program.identifier_system
    consented = ("Encounter", fhir_id(system, "encounter", world.ids["encounter"]))
    closed = ("Goal", fhir_id(system, "goal", world.ids["goal"]))
    for _ in range(3):  # past the first executions (a generic plan, where there is one, is made by then)
        found = await repository.read_current(database, program.id, *consented, hospital)
        async with database.read() as conn:
            assert found == await repository.current(conn, program.id, *consented, hospital)
        assert found.resource_id == consented[1] and found.last_updated.utcoffset() == timedelta(0)
        with pytest.raises(NotFound):
            await repository.read_current(database, program.id, *closed, hospital)
        async with database.read() as conn:
            with pytest.raises(NotFound):
                await repository.current(conn, program.id, *closed, hospital)
        assert await repository.read_current(database, program.id, *closed)  # the program's own client
        with pytest.raises(NotFound):  # another organisation sees nothing of the participant
            await repository.read_current(database, program.id, *consented, "urn:oid:1.2.3|other")
