"""What an import says back: per file, the rows read, what was (or would be) created, and every problem
as (row, column, reason). Reasons say what is wrong, never the value (a cell may be PHI)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from service.domain.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType


@dataclass(frozen=True)
class RowProblem:
    row: int
    """The row's number as the spreadsheet shows it: the header is row 1, the first data row row 2."""
    column: str | None
    """The template column at fault; None when the rule spans the row."""
    reason: str


@dataclass(frozen=True)
class ImportReport:
    kind: str
    rows: int
    """Data rows read (blank rows are not counted)."""
    created: int
    """Rows that created records (a dry run: rows that would)."""
    already_imported: int
    """Rows whose external_id this program imported before: left as they are."""
    problems: list[RowProblem] = field(default_factory=list)
    dry_run: bool = False
    applied: bool = False
    """True when the file's records were committed: not a dry run, and no problem."""

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class FileRefused(BadRequest):
    """The file as a whole cannot be imported (unknown kind, no header, unreadable, too many rows):
    ``detail`` says why. Nothing was written."""

    title = "File cannot be imported"


class FileTooLarge(FileRefused, PayloadTooLarge):
    status = PayloadTooLarge.status
    fhir_code = PayloadTooLarge.fhir_code
    title = "File too large"


class WrongFileType(FileRefused, UnsupportedMediaType):
    status = UnsupportedMediaType.status
    fhir_code = UnsupportedMediaType.fhir_code
    title = "Not a CSV or XLSX file"
