"""The templates (header + one example row, CSV and XLSX, read back the same), their examples importing
as they are, and the CSV reader against any cell text (hypothesis)."""

from __future__ import annotations

import csv
import io
from datetime import date
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.imports import KINDS, FileRefused, import_kind, run_import, template_bytes
from service.imports.reader import cell_text, read_sheet
from service.imports.templates import example_row


def trimmed(row: list[str]) -> list[str]:
    cells = [c.strip() for c in row]
    while cells and not cells[-1]:
        cells.pop()
    return cells


@pytest.mark.parametrize("kind", KINDS)
def test_templates_are_the_header_and_one_example_in_both_formats(kind):
    names = import_kind(kind).names
    csv_sheet = read_sheet("t.csv", template_bytes(kind, "csv"))
    xlsx_sheet = read_sheet("t.xlsx", template_bytes(kind, "xlsx"))
    assert csv_sheet.header == xlsx_sheet.header == names
    assert [n for n, _ in csv_sheet.rows] == [n for n, _ in xlsx_sheet.rows] == [2]
    assert csv_sheet.rows[0][1] == xlsx_sheet.rows[0][1] == trimmed(example_row(kind))
    assert names[0] == "external_id" and all(c.help for c in import_kind(kind).columns)


def test_template_refusals():
    with pytest.raises(FileRefused, match="unknown import kind"):
        template_bytes("goals", "csv")
    with pytest.raises(FileRefused, match="csv and xlsx"):
        template_bytes("participants", "ods")


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
async def test_the_examples_import_in_order(database, program, fmt):
    for kind in KINDS:
        content = template_bytes(kind, fmt)
        report = await run_import(database, program.id, kind, f"t.{fmt}", content, dry_run=False, actor="t")
        assert (report.created, report.problems, report.applied) == (1, [], True)


def test_xlsx_cells_as_text():
    assert cell_text(date(2020, 2, 29)) == "2020-02-29"
    assert cell_text(12.0) == "12" and cell_text(12.5) == "12.5" and cell_text(True) == "true"
    assert cell_text(None) == ""


cells = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=30)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(cells, min_size=3, max_size=3), min_size=1, max_size=8))
def test_csv_reader_gives_back_what_a_csv_writer_wrote(rows):
    out = io.StringIO(newline="")
    csv.writer(out).writerows([["a", "b", "c"], *rows])
    sheet = read_sheet("x.csv", out.getvalue().encode("utf-8"))
    expected = [trimmed(row) for row in rows if any(c.strip() for c in row)]
    assert sheet.header == ["a", "b", "c"]
    assert [cells for _, cells in sheet.rows] == expected
    numbers = [n for n, _ in sheet.rows]
    assert numbers == sorted(set(numbers)) and all(n >= 2 for n in numbers)


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=300))
def test_csv_reader_on_any_bytes_reads_or_refuses(content):
    status = 200
    try:
        read_sheet("x.csv", content)
    except FileRefused as refused:
        status = refused.status
    assert status in (200, 400, 415)


def test_the_readme_lists_every_column():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("## Import (spreadsheets)", 1)[1].split("\n## ", 1)[0]
    for kind in KINDS:
        line = next(line for line in section.splitlines() if line.startswith(f"- **{kind}**"))
        listed = [part.strip().strip("`*") for part in line.split(":", 1)[1].split(",")]
        spec = import_kind(kind)
        assert listed == spec.names
        assert [n for n in spec.names if f"`{n}`*" in line] == spec.required
