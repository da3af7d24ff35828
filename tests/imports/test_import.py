"""run_import on CSV and XLSX: records created through the peer API's use cases, one bad row stops the
whole file, a re-import creates nothing twice, the report never quotes a cell, the import is audited."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from sqlalchemy import select

from service.domain.errors import Conflict
from service.domain.note import NoteStatus
from service.imports import import_kind, run_import
from service.store import RecordRepository
from service.store import kinds as k
from service.store.tables import audit_log, import_rows
from tests.imports.support import csv_bytes, participant, session, specialist, table, xlsx_bytes

ACTOR = "test:importer"


async def records(database, kind) -> list[Any]:
    async with database.read() as conn:
        rows = await conn.execute(select(RecordRepository(kind).table))
        return [RecordRepository(kind)._record(row) for row in rows]


async def audits(database) -> list[dict[str, Any]]:
    async with database.read() as conn:
        rows = await conn.execute(select(audit_log).where(audit_log.c.subtype == "import"))
        return [dict(r) for r in rows.mappings()]


async def ledger(database) -> list[tuple[str, str]]:
    async with database.read() as conn:
        rows = await conn.execute(select(import_rows.c.kind, import_rows.c.external_id))
        return sorted((r.kind, r.external_id) for r in rows)


async def load(database, program, kind, name, content, *, dry_run=False):
    return await run_import(database, program.id, kind, name, content, dry_run=dry_run, actor=ACTOR)


async def test_csv_participants_specialists_and_sessions_with_notes(database, program):
    people = table("participants", [participant("P-1", "Okafor"), participant("P-2", "Lindqvist", email="l@ex.org")])
    report = await load(database, program, "participants", "people.csv", csv_bytes(people))
    assert (report.rows, report.created, report.already_imported, report.problems) == (2, 2, 0, [])
    assert report.applied and not report.dry_run

    staff = table("specialists", [specialist("S-1", "Nakamura")])
    assert (await load(database, program, "specialists", "staff.csv", csv_bytes(staff))).created == 1

    sessions = table(
        "sessions",
        [session("E-1", "P-1", "S-1"), session("E-2", "P-2", "S-1", note_signed="", note_sud_counseling="yes")],
    )
    report = await load(database, program, "sessions", "sessions.csv", csv_bytes(sessions))
    assert (report.created, report.problems) == (2, [])

    stored = {p.name.family: p for p in await records(database, k.PARTICIPANTS)}
    assert set(stored) == {"Okafor", "Lindqvist"}
    assert stored["Okafor"].name.given == ["Robin", "Ash"]
    assert stored["Okafor"].birth_date.isoformat() == "1985-02-03"
    assert [t.system.value for t in stored["Lindqvist"].telecom] == ["phone", "email"]
    (expert,) = await records(database, k.SPECIALISTS)
    assert expert.languages == ["en", "es"] and expert.certification.state == "NC"
    encounters = {e.participant_id: e for e in await records(database, k.ENCOUNTERS)}
    assert set(encounters) == {stored["Okafor"].id, stored["Lindqvist"].id}
    assert all(e.specialist_id == expert.id and e.billable_units == 3 for e in encounters.values())
    notes = {n.encounter_id: n for n in await records(database, k.NOTES)}
    assert notes[encounters[stored["Okafor"].id].id].status is NoteStatus.FINAL
    second = notes[encounters[stored["Lindqvist"].id].id]
    assert second.status is NoteStatus.DRAFT and second.sud_counseling_note
    assert await ledger(database) == [
        ("participants", "P-1"),
        ("participants", "P-2"),
        ("sessions", "E-1"),
        ("sessions", "E-2"),
        ("specialists", "S-1"),
    ]


async def test_xlsx_with_real_date_cells(database, program):
    people = table("participants", [participant("P-1", "Moreau", birth_date=datetime(1979, 11, 30))])
    report = await load(database, program, "participants", "people.xlsx", xlsx_bytes(people))
    assert (report.created, report.problems) == (1, [])
    staff = table("specialists", [specialist("S-1", "Adeyemi", weekly_capacity=12, active=True)])
    assert (await load(database, program, "specialists", "staff.xlsx", xlsx_bytes(staff))).created == 1
    report = await load(
        database, program, "sessions", "s.xlsx", xlsx_bytes(table("sessions", [session("E-1", "P-1", "S-1")]))
    )
    assert (report.created, report.problems) == (1, [])
    (person,) = await records(database, k.PARTICIPANTS)
    assert person.birth_date.isoformat() == "1979-11-30"
    (expert,) = await records(database, k.SPECIALISTS)
    assert expert.weekly_capacity == 12 and expert.active


async def test_one_bad_row_imports_nothing_and_names_row_and_column(database, program):
    rows = [
        participant("P-1", "Haddad"),
        participant("P-2", "Kowalczyk", gender="robot"),
        participant("P-3", "Ferreira"),
    ]
    content = csv_bytes(table("participants", rows))
    report = await load(database, program, "participants", "people.csv", content)
    assert not report.applied
    assert [(p.row, p.column) for p in report.problems] == [(3, "gender")]
    assert "robot" not in report.problems[0].reason and "Kowalczyk" not in report.problems[0].reason
    assert "female" in report.problems[0].reason  # it says what is allowed
    assert await records(database, k.PARTICIPANTS) == []
    assert await ledger(database) == [] and await audits(database) == []

    rows[1]["gender"] = "male"
    clean = await load(database, program, "participants", "people.csv", csv_bytes(table("participants", rows)))
    assert clean.applied and clean.created == 3
    assert len(await records(database, k.PARTICIPANTS)) == 3


async def test_rules_of_the_domain_name_their_column(database, program):
    rows = [
        participant("P-1", "A", birth_date="2999-01-01"),
        participant("P-2", "B", state="ZZ", city="Durham"),
        participant("P-3", "C", mrn="12345"),
        participant("P-4", "D", phone="12"),
        participant("P-5", ""),
        participant("bad id!", "E"),
        participant("P-1", "F"),
    ]
    report = await load(database, program, "participants", "p.csv", csv_bytes(table("participants", rows)))
    found = {(p.row, p.column) for p in report.problems}
    assert found == {
        (2, "birth_date"),
        (3, "state"),
        (4, "mrn_system"),
        (5, "phone"),
        (6, "family_name"),
        (7, "external_id"),
        (8, "external_id"),
    }
    assert next(p.reason for p in report.problems if p.row == 8) == "the same external_id as row 2"
    assert await records(database, k.PARTICIPANTS) == []


async def test_session_rules_and_references(database, program):
    await load(database, program, "participants", "p.csv", csv_bytes(table("participants", [participant("P-1", "G")])))
    expired = specialist("S-2", "H", certification_issued_on="2020-01-01", certification_expires_on="2021-01-01")
    await load(
        database, program, "specialists", "s.csv", csv_bytes(table("specialists", [specialist("S-1", "I"), expired]))
    )
    rows = [
        session("E-1", "P-404", "S-1"),
        session("E-2", "P-1", "S-2"),
        session("E-3", "P-1", "S-1", end=""),
        session("E-4", "P-1", "S-1", support_categories=""),
        session("E-5", "P-1", "S-1", note_signed="perhaps"),
        session("E-6", "P-1", "S-1", start="2026-01-05T10:00:00"),
        session("E-7", "P-1", "S-1"),
    ]
    report = await load(database, program, "sessions", "e.csv", csv_bytes(table("sessions", rows)))
    assert [(p.row, p.column) for p in report.problems] == [
        (2, "participant"),
        (3, "specialist"),
        (4, "end"),
        (5, "support_categories"),
        (6, "note_signed"),
        (7, "start"),
    ]
    assert report.created == 1  # E-7 would have been: nothing is kept
    assert await records(database, k.ENCOUNTERS) == [] and await records(database, k.NOTES) == []


async def test_reimport_creates_nothing_twice(database, program):
    content = csv_bytes(table("participants", [participant("P-1", "J"), participant("P-2", "K")]))
    assert (await load(database, program, "participants", "p.csv", content)).created == 2
    again = await load(database, program, "participants", "p.csv", content)
    assert (again.created, again.already_imported, again.applied, again.problems) == (0, 2, True, [])
    grown = table("participants", [participant("P-1", "J"), participant("P-2", "K"), participant("P-3", "L")])
    more = await load(database, program, "participants", "p.xlsx", xlsx_bytes(grown))
    assert (more.created, more.already_imported) == (1, 2)
    assert sorted(p.name.family for p in await records(database, k.PARTICIPANTS)) == ["J", "K", "L"]
    # a session row names the participant by external id or by PeerLink id
    await load(database, program, "specialists", "s.csv", csv_bytes(table("specialists", [specialist("S-1", "M")])))
    person = next(p for p in await records(database, k.PARTICIPANTS) if p.name.family == "L")
    sessions = table("sessions", [session("E-1", "P-1", "S-1"), session("E-2", person.id, "S-1")])
    assert (await load(database, program, "sessions", "e.csv", csv_bytes(sessions))).created == 2
    assert (await load(database, program, "sessions", "e.csv", csv_bytes(sessions))).already_imported == 2
    assert len(await records(database, k.ENCOUNTERS)) == 2 and len(await records(database, k.NOTES)) == 2


async def test_dry_run_checks_everything_and_writes_nothing(database, program):
    content = csv_bytes(table("participants", [participant("P-1", "N"), participant("P-2", "O")]))
    report = await load(database, program, "participants", "p.csv", content, dry_run=True)
    assert (report.created, report.dry_run, report.applied, report.problems) == (2, True, False, [])
    assert await records(database, k.PARTICIPANTS) == [] and await ledger(database) == []
    assert await audits(database) == []


async def test_an_applied_file_is_one_audit_event_without_phi(database, program):
    content = csv_bytes(table("participants", [participant("P-1", "Quennell"), participant("P-2", "Rasmussen")]))
    await load(database, program, "participants", "quennell-family.csv", content)
    await load(database, program, "participants", "quennell-family.csv", content)  # re-import: audited too
    first, second = await audits(database)
    assert (first["type"], first["action"], first["client_id"], first["program_id"]) == (
        "admin",
        "C",
        ACTOR,
        program.id,
    )
    assert first["detail"]["created"] == 2 and second["detail"]["already_imported"] == 2
    assert len(first["detail"]["patients"]) == 2
    text = repr(first) + repr(second)
    for phi in ("Quennell", "Rasmussen", "1985-02-03", "919-555-0142", "quennell-family"):
        assert phi not in text


async def test_the_same_file_imported_twice_at_once_creates_each_row_once(database, program):
    content = csv_bytes(table("participants", [participant("P-1", "W"), participant("P-2", "X")]))
    results = await asyncio.gather(
        load(database, program, "participants", "p.csv", content),
        load(database, program, "participants", "p.csv", content),
        return_exceptions=True,
    )
    reports = [r for r in results if not isinstance(r, BaseException)]
    assert all(isinstance(r, Conflict) for r in results if isinstance(r, BaseException))
    assert sum(r.created for r in reports) == 2
    assert len(await records(database, k.PARTICIPANTS)) == 2 and len(await ledger(database)) == 2


async def test_no_reason_ever_quotes_a_cell(database, program):
    for kind in ("participants", "specialists", "sessions"):
        names = import_kind(kind).names
        marked = {name: f"Zq{n}x!" for n, name in enumerate(names)}
        marked["external_id"] = "R-1"
        report = await load(database, program, kind, "m.csv", csv_bytes(table(kind, [marked])))
        assert len(report.problems) >= 3
        reasons = " ".join(p.reason for p in report.problems)
        assert not any(value in reasons for value in marked.values() if value != "R-1"), reasons
