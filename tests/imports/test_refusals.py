"""A file that cannot be imported as a whole is refused with a clear reason (400, 413 or 415), never a
crash, and the reason never quotes the file."""

from __future__ import annotations

import io
import zipfile

import pytest

from service.domain.errors import NotFound
from service.imports import MAX_BYTES, MAX_ROWS, FileRefused, FileTooLarge, WrongFileType, run_import
from tests.imports.support import csv_bytes, participant, table, xlsx_bytes


async def refused(database, program, name, content, kind="participants"):
    with pytest.raises(FileRefused) as caught:
        await run_import(database, program.id, kind, name, content, dry_run=False, actor="test")
    return caught.value


GOOD = csv_bytes(table("participants", [participant("P-1", "Tamsin")]))


@pytest.mark.parametrize(
    ("name", "content", "error", "status", "words"),
    [
        ("people.xls", GOOD, WrongFileType, 415, ".csv or an .xlsx"),
        ("people", GOOD, WrongFileType, 415, ".csv or an .xlsx"),
        ("people.xlsx", GOOD, WrongFileType, 415, "not an Excel workbook"),
        ("people.csv", xlsx_bytes([["a"]]), WrongFileType, 415, "is a workbook"),
        ("people.xlsx", b"PK\x03\x04Tamsin not really a zip", WrongFileType, 415, "not a readable Excel"),
        ("people.csv", "Tamsin,é".encode("latin-1"), WrongFileType, 415, "UTF-8"),
        ("people.csv", b"Tamsin\x00,1", WrongFileType, 415, "not CSV text"),
        ("people.csv", b"", FileRefused, 400, "empty"),
        ("people.csv", b"\r\n\r\n", FileRefused, 400, "empty"),
        ("people.csv", b"x" * (MAX_BYTES + 1), FileTooLarge, 413, "larger than"),
    ],
)
async def test_unreadable_files(database, program, name, content, error, status, words):
    caught = await refused(database, program, name, content)
    assert type(caught) is error and caught.status == status
    assert words in caught.detail and "Tamsin" not in caught.detail


async def test_header_problems(database, program):
    no_header = csv_bytes([["P-1", "Tamsin", "", "1990-01-01", "female"]])
    caught = await refused(database, program, "p.csv", no_header)
    assert "column 1 of the header" in caught.detail and "Tamsin" not in caught.detail
    missing = csv_bytes([["external_id", "family_name"], ["P-1", "Tamsin"]])
    assert (
        "lacks the required column(s) birth_date, gender" in (await refused(database, program, "p.csv", missing)).detail
    )
    twice = csv_bytes([["external_id", "External ID", "family_name", "birth_date", "gender"]])
    assert "external_id twice" in (await refused(database, program, "p.csv", twice)).detail
    header_only = csv_bytes([table("participants", [])[0]])
    assert "no data rows" in (await refused(database, program, "p.csv", header_only)).detail
    blank_first = b"\r\n" + GOOD
    assert "first row must be the header" in (await refused(database, program, "p.csv", blank_first)).detail
    # headers are matched whatever their case and spacing, and a semicolon CSV (a European Excel) reads too
    relaxed = GOOD.replace(b"external_id", b" External ID ").replace(b",", b";")
    report = await run_import(database, program.id, "participants", "p.csv", relaxed, dry_run=True, actor="t")
    assert (report.created, report.problems) == (1, [])


async def test_unknown_kind_and_program(database, program):
    caught = await refused(database, program, "p.csv", GOOD, kind="referrals")
    assert caught.status == 400 and "participants, specialists, sessions" in caught.detail
    with pytest.raises(NotFound):
        await run_import(database, "no-such-program", "participants", "p.csv", GOOD, dry_run=True, actor="t")


async def test_too_many_rows_and_bad_quotes(database, program):
    rows = [participant(f"P-{n}", "Tamsin") for n in range(MAX_ROWS + 1)]
    assert "more than" in (await refused(database, program, "p.csv", csv_bytes(table("participants", rows)))).detail
    broken = GOOD + b'P-9,"Tamsin\r\n'
    assert "cannot be read" in (await refused(database, program, "p.csv", broken)).detail


async def test_a_zip_bomb_is_refused_before_it_is_unpacked(database, program):
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("xl/sharedStrings.xml", b" " * (60 * 1024 * 1024))
    caught = await refused(database, program, "p.xlsx", out.getvalue())
    assert type(caught) is FileTooLarge and "unpacks" in caught.detail
