"""Reading a spreadsheet into text cells: CSV (UTF-8, comma or semicolon separated) with the standard
library's csv module, XLSX with openpyxl in read-only mode (the first worksheet). Cells come back as
stripped text; Excel dates and times as ISO 8601 text; blank rows are dropped.

Refusals (FileRefused and its subclasses) never quote the file's contents."""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import PurePath
from typing import Any

from .report import FileRefused, FileTooLarge, WrongFileType

MAX_BYTES = 5 * 1024 * 1024
"""The largest file taken (5 MiB)."""
MAX_ROWS = 1000
"""The most data rows in one file."""
MAX_COLUMNS = 60
MAX_CELL_CHARS = 20_000
MAX_XLSX_UNPACKED = 50 * 1024 * 1024
"""An XLSX file is a zip: what it may unpack to, in all."""
FORMATS = ("csv", "xlsx")
_ZIP_MAGIC = b"PK\x03\x04"


@dataclass(frozen=True)
class Sheet:
    header: list[str]
    """Column names as written, normalised: trimmed, lower case, spaces and dashes as underscores."""
    rows: list[tuple[int, list[str]]]
    """(row number as the spreadsheet shows it, cells), the header being row 1; blank rows left out."""


def file_format(filename: str, content: bytes) -> str:
    """csv or xlsx, from the file name's extension, checked against the content."""
    suffix = PurePath(filename or "").suffix.lower().lstrip(".")
    if suffix not in FORMATS:
        raise WrongFileType("the file must be a .csv or an .xlsx spreadsheet (save it in one of those formats)")
    if suffix == "xlsx" and not content.startswith(_ZIP_MAGIC):
        raise WrongFileType("the file is named .xlsx but is not an Excel workbook")
    if suffix == "csv" and content.startswith(_ZIP_MAGIC):
        raise WrongFileType("the file is named .csv but is a workbook: name it .xlsx, or save it as CSV")
    return suffix


def normalise_name(name: str) -> str:
    return "_".join(name.strip().lower().replace("-", " ").split())


def read_sheet(filename: str, content: bytes) -> Sheet:
    """The file's header and data rows. Raises FileRefused (400), FileTooLarge (413), WrongFileType (415)."""
    if len(content) > MAX_BYTES:
        raise FileTooLarge(f"the file is larger than {MAX_BYTES // (1024 * 1024)} MiB; split it")
    if not content.strip():
        raise FileRefused("the file is empty")
    fmt = file_format(filename, content)
    lines = _csv_rows(content) if fmt == "csv" else _xlsx_rows(content)
    return _sheet(lines)


def _sheet(lines: Iterable[list[str]]) -> Sheet:
    header: list[str] | None = None
    rows: list[tuple[int, list[str]]] = []
    for number, cells in enumerate(lines, start=1):
        if len(cells) > MAX_COLUMNS and any(cells[MAX_COLUMNS:]):
            raise FileRefused(f"row {number} has more than {MAX_COLUMNS} columns")
        cells = [c.strip() for c in cells[:MAX_COLUMNS]]
        while cells and not cells[-1]:
            cells.pop()
        if any(len(c) > MAX_CELL_CHARS for c in cells):
            raise FileRefused(f"row {number} has a cell longer than {MAX_CELL_CHARS} characters")
        if header is None:
            if not any(cells):
                raise FileRefused("the first row must be the header (the template's column names); it is blank")
            header = [normalise_name(c) for c in cells]
            continue
        if not any(cells):
            continue
        if len(rows) == MAX_ROWS:
            raise FileRefused(f"the file has more than {MAX_ROWS} data rows; split it")
        rows.append((number, cells))
    if header is None:
        raise FileRefused("the file is empty")
    return Sheet(header, rows)


def _csv_rows(content: bytes) -> Iterator[list[str]]:
    if b"\x00" in content:
        raise WrongFileType("the file is not CSV text")
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise WrongFileType("the CSV file is not UTF-8 text: save it as 'CSV UTF-8'") from None
    first_line = text.split("\n", 1)[0]
    delimiter = ";" if first_line.count(";") > first_line.count(",") else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        yield from reader
    except csv.Error:
        raise FileRefused(f"the CSV file cannot be read after row {reader.line_num} (a stray quote?)") from None


def _xlsx_rows(content: bytes) -> Iterator[list[str]]:
    from openpyxl import load_workbook

    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
    except zipfile.BadZipFile:
        raise WrongFileType("the file is not a readable Excel workbook") from None
    if unpacked > MAX_XLSX_UNPACKED:
        raise FileTooLarge("the workbook unpacks to more than 50 MiB; split it")
    try:
        workbook = load_workbook(io.BytesIO(content), read_only=True, data_only=True)
    except Exception:  # openpyxl raises many kinds on a damaged or foreign file
        raise WrongFileType("the file is not a readable Excel workbook (.xlsx)") from None
    try:
        sheet = workbook.worksheets[0] if workbook.worksheets else None
        if sheet is None:
            raise FileRefused("the workbook has no worksheet")
        for values in sheet.iter_rows(values_only=True, max_col=MAX_COLUMNS + 1):
            yield [cell_text(v) for v in values]
    finally:
        workbook.close()


def cell_text(value: Any) -> str:
    """An XLSX cell as the text a CSV would hold: dates ISO 8601, whole numbers without '.0'."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == time(0) and value.tzinfo is None else value.isoformat()
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
