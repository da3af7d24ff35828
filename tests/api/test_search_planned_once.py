"""Searches driven by a criterion whose values never change the right plan (one Patient, one record, one
identifier, a few ids: ``service.fhir.search.sql.driving``) are planned once per PostgreSQL session; the
others are planned for their values at every execution (migration 0016). Both give the same matches."""

from __future__ import annotations

import pytest
from sqlalchemy import String, case, column, event, select, values
from sqlalchemy.dialects import postgresql

from mappings.ids import fhir_id
from service.fhir.search import parse
from service.fhir.search.execute import prepare
from service.fhir.search.includes import _pointed_at, typed_id
from service.fhir.search.sql import Compiler, driving
from service.fhir.search.values import TYPED_REFERENCE
from tests.factories import World

BASE = "http://gateway.test/fhir"


def _shapes(resource_type: str, *params: tuple[str, str]):
    query = parse(resource_type, list(params), lenient=False, base=BASE)
    return Compiler("program", resource_type).plan(query.criteria)[0]


@pytest.mark.parametrize(
    ("resource_type", "params", "driver"),
    [
        ("DocumentReference", [("patient", "Patient/a"), ("category", "clinical-note"), ("date", "ge2025")], 0),
        ("DocumentReference", [("category", "clinical-note"), ("subject", "Patient/a")], 1),
        ("Encounter", [("date", "ge2025-01-01"), ("date", "lt2025-01-02"), ("patient", "a")], 0),
        ("Patient", [("identifier", "urn:oid:1.2.3|MRN-1")], 0),
        ("Patient", [("_id", "a,b,c")], 0),
        ("DocumentReference", [("encounter", "Encounter/e")], 0),
        # nothing bounds these whatever their values: planned for the values each time
        ("DocumentReference", [("category", "clinical-note")], None),
        ("Encounter", [("date", "ge2025-01-01"), ("date", "lt2025-01-02")], None),
        ("Encounter", [("patient", "Patient/a,Patient/b")], None),
        ("Patient", [("name", "smith")], None),
        ("Patient", [("_id:not", "a")], None),
        ("Encounter", [("patient:missing", "true")], None),
    ],
)
def test_the_driving_criterion(resource_type, params, driver):
    assert driving(_shapes(resource_type, *params)) == driver


def test_a_driven_search_looks_up_its_other_criteria_per_resource():
    query = parse(
        "DocumentReference",
        [("category", "clinical-note"), ("patient", "Patient/a"), ("date", "ge2025")],
        lenient=False,
        base=BASE,
    )
    built, _ = prepare("program", query, "urn:oid:1.2|H", postgres=True)
    assert built.planned_once
    sql = str(built.rows.compile(dialect=postgresql.dialect()))
    # the category and the date: fenced lookups of the resource's own index rows; the patient: a join
    assert sql.count("OFFSET") == 2
    assert sql.count("fhir_search_1.program_id") == 0 and sql.count("fhir_search_2.program_id") == 1
    assert not prepare("program", query, "urn:oid:1.2|H", postgres=False)[0].planned_once
    unbounded = parse("DocumentReference", [("category", "clinical-note")], lenient=False, base=BASE)
    assert not prepare("program", unbounded, None, postgres=True)[0].planned_once


async def test_driven_searches_are_planned_once_and_find_the_same(client, program, database):
    world = await World(client).build()
    patient = fhir_id(program.identifier_system, "participant", world.ids["participant"])
    note = fhir_id(program.identifier_system, "note", world.ids["note"])
    encounter = fhir_id(program.identifier_system, "encounter", world.ids["encounter"])
    searches = {
        f"/fhir/DocumentReference?patient={patient}&category=clinical-note&date=ge2000-01-01": {note},
        f"/fhir/DocumentReference?category=clinical-note&patient={patient}&date=lt2000-01-01": set(),
        f"/fhir/Encounter?patient={patient}&date=ge2000-01-01&_revinclude=DocumentReference:encounter": {
            encounter,
            note,
        },
        f"/fhir/DocumentReference?patient={patient}&_include=DocumentReference:encounter": {note, encounter},
        "/fhir/DocumentReference?category=clinical-note": {note},  # not driven
    }
    for _ in range(3):
        for path, expected in searches.items():
            response = await client.get(path)
            assert response.status_code == 200, response.text
            assert {e["resource"]["id"] for e in response.json().get("entry", [])} == expected, path
    if database.is_sqlite:
        return  # SQLite plans every statement as it runs it: nothing more to see
    async with database.driver() as connection:
        planned = await connection.fetch(
            "SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements "
            "WHERE statement LIKE '%fhir_search%'"
        )
    assert planned, "the driven searches ran on the driver's sessions"
    assert all(row["custom_plans"] == 0 for row in planned)
    assert any(row["generic_plans"] >= 3 and "OFFSET" in row["statement"] for row in planned)
    assert all("clinical-note" not in row["statement"] for row in planned)  # values are parameters


TOKENS = [
    "Encounter/abc",
    "Encounter/a.b-C9",
    "Encounter/abc/_history/2",
    "Encounter/abc/_history/",
    "Encounter/abc/_history/2/x",
    "Encounter/abc/_history/2/",
    "Encounter/abc/x",
    "Encounter/abc/",
    "Encounter/",
    "Encounter",
    "EncounterX/abc",
    "Patient/abc",
    "http://example.org/fhir/Encounter/abc",
    "urn:uuid:0b7c6f2e-6f0e-4e7e-9a55-3b1f1f1f1f1f",
    "",
]


async def test_the_include_takes_the_tokens_the_reference_pattern_takes(database):
    """PostgreSQL's cut of an index token (``typed_id``) takes the same ``Encounter`` ids as the reference
    pattern the other backends use (:data:`service.fhir.search.values.TYPED_REFERENCE`)."""
    if database.is_sqlite:
        pytest.skip("split_part: the one-statement _include is PostgreSQL's")
    token = column("token", String())
    taken, the_id = typed_id(token, "Encounter")
    rows = values(token, name="t").data([(t,) for t in TOKENS])
    statement = select(rows.c.token, case((taken, the_id), else_=None).label("id"))
    async with database.read() as conn:
        found = {row.token: row.id for row in await conn.execute(statement)}
    expected = {}
    for t in TOKENS:
        typed = TYPED_REFERENCE.match(t)
        expected[t] = typed.group(2) if typed and typed.group(1) == "Encounter" else None
    assert found == expected
    assert _pointed_at("Encounter", True) is _pointed_at("Encounter", True)  # built once (and compiled once)


def test_a_search_of_a_whole_type_is_planned_once_per_program():
    """The program's own client asking for every resource of a type: the program and the type are
    constants of the statement (one per program), so that one plan knows how many there are."""
    query = parse("Encounter", [("_count", "20")], lenient=False, base=BASE)
    mine, _ = prepare("program-a", query, None, postgres=True)
    theirs, _ = prepare("program-b", query, None, postgres=True)
    assert mine.planned_once and theirs.planned_once and mine is not theirs
    assert "'program-a'" in str(mine.rows.compile(dialect=postgresql.dialect()))
    assert prepare("program-a", query, None, postgres=True)[0] is mine
    quoted = str(prepare("o'brien", query, None, postgres=True)[0].rows.compile(dialect=postgresql.dialect()))
    assert "'o''brien'" in quoted
    assert not prepare("program-a", query, "urn:oid:1.2|H", postgres=True)[0].planned_once  # a boundary
    assert not prepare("program-a", query, None, postgres=False)[0].planned_once


async def test_a_search_planned_once_takes_no_read_connection(client, program, database):
    """On PostgreSQL a search whose statements all run on the driver's sessions never checks out a
    connection of the read pool; one that is planned per value takes one, and gives it back."""
    if database.is_sqlite:
        pytest.skip("the read pool's lazy checkout: PostgreSQL only")
    world = await World(client).build()
    patient = fhir_id(program.identifier_system, "participant", world.ids["participant"])
    checkouts: list[object] = []

    def counted(*_: object) -> None:
        checkouts.append(object())

    pool = database.read_engine.sync_engine.pool
    event.listen(pool, "checkout", counted)
    try:
        driven = await client.get(f"/fhir/Encounter?patient={patient}&_revinclude=DocumentReference:encounter")
        assert driven.status_code == 200 and len(driven.json()["entry"]) == 2
        assert checkouts == []
        per_value = await client.get("/fhir/DocumentReference?category=clinical-note")
        assert per_value.status_code == 200 and len(per_value.json()["entry"]) == 1
        assert len(checkouts) == 1
    finally:
        event.remove(pool, "checkout", counted)
    assert pool.checkedout() == 0
