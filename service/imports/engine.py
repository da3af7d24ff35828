"""Importing one spreadsheet: every row through the peer API's own model and use case, all or nothing.

The file is read (service.imports.reader), its header checked against the kind's template, and each
row not imported before is built into the body the peer API would take (service.imports.columns),
validated by the record type's own pydantic model and created by ``service.records.operations`` (the
same reference checks, rules, outbox rows, FHIR projection and subscription events as a POST). All of
it runs in one transaction: a dry run, or any problem in any row, rolls the whole file back. An
applied file is audited by one AuditEvent (counts, the kind, the file's SHA-256 and the participants'
Patient ids; no cell values).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import TypeAdapter, ValidationError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from mappings.ids import fhir_id
from service.audit import AuditRecord, write
from service.domain import NoteFields, Program
from service.domain.errors import Conflict, PeerLinkError
from service.records import operations
from service.records import types as rt
from service.store import Database, RecordRepository
from service.store import kinds as k

from . import ledger
from .columns import SESSION_REFERENCES, Built, ImportKind, Where
from .reader import file_format, read_sheet
from .report import FileRefused, ImportReport, RowProblem
from .templates import import_kind

EXTERNAL_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
RECORD_TYPES: dict[str, rt.RecordType[Any]] = {
    "participants": rt.PARTICIPANTS,
    "specialists": rt.SPECIALISTS,
    "sessions": rt.ENCOUNTERS,
}
HINTS: dict[str, tuple[tuple[str, str], ...]] = {
    "participants": (("MRN", "mrn"), ("identifiers", "mrn")),
    "specialists": (("certification", "certification_expires_on"),),
    "sessions": (
        ("peer specialist", "specialist"),
        ("encounter end", "end"),
        ("at most", "end"),
        ("end time", "end"),
        ("support category", "support_categories"),
    ),
}
"""Words of a rule's message that point at a column, when its field name is not in it."""
_BOOL = TypeAdapter(bool)


class _Discard(Exception):
    """Rolls the file's transaction back (a dry run, or a problem)."""


@dataclass
class _Run:
    spec: ImportKind
    program: Program
    now: datetime
    problems: list[RowProblem] = field(default_factory=list)
    created: int = 0
    already: int = 0
    patients: set[str] = field(default_factory=set)


async def run_import(
    database: Database,
    program_id: str,
    kind: str,
    filename: str,
    content: bytes,
    *,
    dry_run: bool,
    actor: str,
    address: str | None = None,
) -> ImportReport:
    """Import the rows of ``content`` (a .csv or .xlsx named ``filename``) as ``kind`` records of the program.

    ``actor`` names who imports, as the audit record's agent (e.g. ``console:alice`` or ``cli:root``);
    ``address`` their network address, if any. Returns the report (``applied`` when committed). A file
    that cannot be read at all raises FileRefused (400), FileTooLarge (413) or WrongFileType (415);
    an unknown program raises NotFound; a concurrent import of the same rows that commits first makes
    this one raise Conflict (409). Nothing is written unless every row is fine."""
    spec = import_kind(kind)
    fmt = file_format(filename, content)
    sheet = read_sheet(filename, content)
    positions = _header(spec, sheet.header)
    rows = [(number, {name: _cell(cells, i) for name, i in positions.items()}) for number, cells in sheet.rows]
    if not rows:
        raise FileRefused("the file has the header but no data rows")
    now = datetime.now(UTC)
    run: _Run | None = None
    try:
        async with database.transaction() as conn:
            program: Program = await RecordRepository(k.PROGRAMS).get(conn, None, program_id)
            run = _Run(spec, program, now)
            await _rows(conn, run, rows)
            if run.problems or dry_run:
                raise _Discard
            await write(conn, _audit(run, len(rows), fmt, content, actor, address))
    except _Discard:
        pass
    except IntegrityError:
        # PostgreSQL: another import of the same rows committed first (the ledger's key refused ours)
        raise Conflict("another import of the same rows finished first; nothing of this one was kept") from None
    assert run is not None
    return ImportReport(
        kind=kind,
        rows=len(rows),
        created=run.created,
        already_imported=run.already,
        problems=sorted(run.problems, key=lambda p: p.row),
        dry_run=dry_run,
        applied=not dry_run and not run.problems,
    )


def _header(spec: ImportKind, header: list[str]) -> dict[str, int]:
    known = set(spec.names)
    positions: dict[str, int] = {}
    for index, name in enumerate(header):
        if not name:
            continue
        if name not in known:
            raise FileRefused(
                f"column {index + 1} of the header is not a column of the {spec.name} template "
                f"(the columns are: {', '.join(spec.names)})"
            )
        if name in positions:
            raise FileRefused(f"the header names the column {name} twice")
        positions[name] = index
    missing = [name for name in spec.required if name not in positions]
    if missing:
        raise FileRefused(
            f"the header lacks the required column(s) {', '.join(missing)}; the first row must be the "
            f"{spec.name} template's header"
        )
    return positions


def _cell(cells: list[str], index: int) -> str:
    return cells[index] if index < len(cells) else ""


async def _rows(conn: AsyncConnection, run: _Run, rows: list[tuple[int, dict[str, str]]]) -> None:
    first_seen: dict[str, int] = {}
    for number, cells in rows:
        external_id = cells["external_id"]
        if not EXTERNAL_ID.match(external_id):
            reason = "is required" if not external_id else "must be 1 to 64 letters, digits, '.', '-' or '_'"
            run.problems.append(RowProblem(number, "external_id", reason))
        elif external_id in first_seen:
            reason = f"the same external_id as row {first_seen[external_id]}"
            run.problems.append(RowProblem(number, "external_id", reason))
        else:
            first_seen[external_id] = number
    done = await ledger.imported(conn, run.program.id, run.spec.name, first_seen)
    references = await _references(conn, run, rows)
    for number, cells in rows:
        external_id = cells["external_id"]
        if first_seen.get(external_id) != number:
            continue
        if external_id in done:
            run.already += 1
            continue
        resolved = {**cells, **{c: references[c].get(cells[c], cells[c]) for c in references if cells.get(c)}}
        record_id = await _one_row(conn, run, number, resolved)
        if record_id is not None:
            run.created += 1
            await ledger.remember(conn, run.program.id, run.spec.name, external_id, record_id, run.now)


async def _references(
    conn: AsyncConnection, run: _Run, rows: list[tuple[int, dict[str, str]]]
) -> dict[str, dict[str, str]]:
    """Sessions: for each reference column, the external ids it names that were imported -> record ids
    (a value not found there is taken as a PeerLink id and checked by the use case)."""
    if run.spec.name != "sessions":
        return {}
    found: dict[str, dict[str, str]] = {}
    for column, kind in SESSION_REFERENCES.items():
        values = {cells[column] for _, cells in rows if cells.get(column)}
        found[column] = await ledger.imported(conn, run.program.id, kind, values)
    return found


async def _one_row(conn: AsyncConnection, run: _Run, number: int, cells: dict[str, str]) -> str | None:
    """Create the row's record(s); their id, or None after noting the row's problems."""
    built = run.spec.build(cells)
    rtype = RECORD_TYPES[run.spec.name]
    try:
        body = rtype.fields.model_validate(built.body)
    except ValidationError as error:
        run.problems += _pydantic_problems(run.spec, number, error, built.where)
        return None
    try:
        record = await operations.create(conn, run.program.id, rtype, body, run.now)
        if built.note is not None:
            await _note(conn, run, number, record, built)
    except PeerLinkError as error:
        run.problems.append(RowProblem(number, _column_named(run.spec, built.where, error.detail), error.detail))
        return None
    except _RowFailed:
        return None
    patient = getattr(record, "participant_id", None) or (record.id if run.spec.name == "participants" else None)
    if patient:
        run.patients.add(fhir_id(run.program.identifier_system, "participant", patient))
    return str(record.id)


class _RowFailed(Exception):
    pass


async def _note(conn: AsyncConnection, run: _Run, number: int, session: Any, built: Built) -> None:
    assert built.note is not None
    flags: dict[str, bool] = {}
    for key, column in (("signed", "note_signed"), ("sud_counseling_note", "note_sud_counseling")):
        try:
            flags[key] = _BOOL.validate_python(built.note[key])
        except ValidationError:
            run.problems.append(RowProblem(number, column, "must be yes or no"))
    if len(flags) < 2:
        raise _RowFailed
    try:
        note = NoteFields.model_validate(
            {
                "encounter_id": session.id,
                "author_id": session.specialist_id,
                "text": built.note["text"],
                "sud_counseling_note": flags["sud_counseling_note"],
            }
        )
    except ValidationError as error:
        run.problems += _pydantic_problems(run.spec, number, error, {("text",): "note_text"})
        raise _RowFailed from None
    created = await operations.create(conn, run.program.id, rt.NOTES, note, run.now)
    if flags["signed"]:
        await operations.sign_note(conn, run.program.id, created.id, expected_version=None, now=run.now)


def _pydantic_problems(spec: ImportKind, number: int, error: ValidationError, where: Where) -> list[RowProblem]:
    problems = []
    for item in error.errors(include_input=False, include_url=False):
        reason = str(item["msg"]).removeprefix("Value error, ")
        if item["type"] == "missing":
            reason = "is required"
        column = _column_at(tuple(item["loc"]), where) or _column_named(spec, where, reason)
        if column is None and item["loc"]:
            column = _column_named(spec, where, str(item["loc"][0]))
        problems.append(RowProblem(number, column, reason))
    return problems


def _column_at(loc: tuple[str | int, ...], where: Where) -> str | None:
    for end in range(len(loc), 0, -1):
        if loc[:end] in where:
            return where[loc[:end]]
    return None


def _column_named(spec: ImportKind, where: Where, message: str) -> str | None:
    """The column a rule's message is about: a field or column name in it, else a hint word."""
    by_field = {str(path[0]): column for path, column in where.items() if len(path) == 1}
    names = {**{c: c for c in spec.names if c != "external_id"}, **by_field}
    for name in sorted(names, key=len, reverse=True):
        if re.search(rf"\b{re.escape(name)}\b", message):
            return names[name]
    for word, column in HINTS.get(spec.name, ()):
        if word in message:
            return column
    return None


def _audit(run: _Run, rows: int, fmt: str, content: bytes, actor: str, address: str | None) -> AuditRecord:
    return AuditRecord(
        "admin",
        "import",
        "C",
        "0",
        client_id=actor,
        address=address,
        program_id=run.program.id,
        detail={
            "import": run.spec.name,
            "format": fmt,
            "rows": rows,
            "created": run.created,
            "already_imported": run.already,
            "sha256": hashlib.sha256(content).hexdigest(),
            "patients": sorted(run.patients),
        },
        recorded=run.now,
    )
