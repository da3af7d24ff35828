"""The downloadable templates: the header row and one example row, as CSV or XLSX bytes. The XLSX has a
second worksheet, "columns", explaining each column (only the first worksheet is imported)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime

from .columns import IMPORT_KINDS, ImportKind
from .reader import FORMATS
from .report import FileRefused

MEDIA_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


def import_kind(kind: str) -> ImportKind:
    found = IMPORT_KINDS.get(kind)
    if found is None:
        raise FileRefused(f"unknown import kind; the kinds are {', '.join(IMPORT_KINDS)}")
    return found


def example_row(kind: str, today: date | None = None) -> list[str]:
    day = today or datetime.now(UTC).date()
    return [column.example(day) for column in import_kind(kind).columns]


def template_filename(kind: str, fmt: str) -> str:
    import_kind(kind)
    return f"peerlink-{kind}-template.{fmt}"


def template_bytes(kind: str, fmt: str, today: date | None = None) -> bytes:
    """The template of ``kind`` (participants, specialists, sessions) as ``fmt`` (csv or xlsx): the header
    and one example row that imports as it is (sessions: after the participants' and specialists' examples)."""
    spec = import_kind(kind)
    if fmt not in FORMATS:
        raise FileRefused("the template formats are csv and xlsx")
    rows = [spec.names, example_row(kind, today)]
    if fmt == "csv":
        out = io.StringIO(newline="")
        csv.writer(out, lineterminator="\r\n").writerows(rows)
        return out.getvalue().encode("utf-8")
    return _xlsx(spec, rows)


def _xlsx(spec: ImportKind, rows: list[list[str]]) -> bytes:
    from openpyxl import Workbook
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.title = spec.name
    for row in rows:
        sheet.append(row)
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for index, column in enumerate(spec.columns, start=1):
        letter = get_column_letter(index)
        sheet.column_dimensions[letter].width = max(12, len(column.name) + 2)
        sheet.cell(row=2, column=index).number_format = "@"  # text: Excel keeps dates and ids as typed
    sheet.freeze_panes = "A2"
    help_sheet = workbook.create_sheet("columns")
    help_sheet.append(["column", "required", "meaning"])
    for cell in help_sheet[1]:
        cell.font = Font(bold=True)
    for column in spec.columns:
        help_sheet.append([column.name, "yes" if column.required else "no", column.help])
    help_sheet.column_dimensions["A"].width = 28
    help_sheet.column_dimensions["C"].width = 100
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()
