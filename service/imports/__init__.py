"""Spreadsheet import for programs without an app: participants, peer specialists and sessions with
notes from CSV or XLSX files, every row through the peer API's own rules, all or nothing per file,
and a re-import of the same rows creates nothing twice (the rows' ``external_id``).

The public interface (used by the console and by ``peerlink import``)::

    KINDS                                   # ("participants", "specialists", "sessions")
    template_bytes(kind, fmt) -> bytes      # fmt "csv" or "xlsx": the header and one example row
    await run_import(database, program_id, kind, filename, content, dry_run=..., actor=..., address=None)
        -> ImportReport(kind, rows, created, already_imported, problems: list[RowProblem], dry_run, applied)
    RowProblem(row, column, reason)         # never the cell's value
    FileRefused (400) > FileTooLarge (413), WrongFileType (415)   # the file as a whole; .detail says why
"""

from .columns import IMPORT_KINDS, KINDS, Column, ImportKind
from .engine import run_import
from .reader import FORMATS, MAX_BYTES, MAX_ROWS
from .report import FileRefused, FileTooLarge, ImportReport, RowProblem, WrongFileType
from .templates import MEDIA_TYPES, import_kind, template_bytes, template_filename

__all__ = [
    "FORMATS",
    "IMPORT_KINDS",
    "KINDS",
    "MAX_BYTES",
    "MAX_ROWS",
    "MEDIA_TYPES",
    "Column",
    "FileRefused",
    "FileTooLarge",
    "ImportKind",
    "ImportReport",
    "RowProblem",
    "WrongFileType",
    "import_kind",
    "run_import",
    "template_bytes",
    "template_filename",
]
