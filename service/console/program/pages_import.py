"""/console/program/import: spreadsheet import for program admins and supervisors. Download a template
(CSV or XLSX), upload a file for a dry run that reports every problem as (row, column, reason) and
imports nothing, then confirm: the confirm form posts the same file back (its bytes in the form,
with the CSRF token) and the engine (service.imports.run_import) checks every row again and imports
all of the file or nothing. The server keeps no uploaded file between the two steps."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Path, Request, UploadFile
from fastapi.responses import Response

from service.console.audit import agent
from service.console.roles import Role
from service.console.security import CurrentUser, require_roles
from service.console.web import add_nav, render
from service.imports import (
    FORMATS,
    IMPORT_KINDS,
    MAX_BYTES,
    MEDIA_TYPES,
    FileRefused,
    ImportReport,
    run_import,
    template_bytes,
    template_filename,
)

router = APIRouter(prefix="/import")
IMPORTERS = frozenset({Role.PROGRAM_ADMIN, Role.SUPERVISOR})
Importer = Annotated[CurrentUser, require_roles(IMPORTERS)]
Kind = Annotated[str, Form(max_length=20)]
HOME = "/console/program/import"
FORM_OVERHEAD = 16 * 1024  # the confirm form's other fields and encoding


def largest_file(request: Request) -> int:
    """The largest file the two steps can carry: the engine's limit, and the gateway's request-body
    limit for the confirm form, which carries the file in base64 (4 bytes for every 3)."""
    body_limit: int = request.app.state.settings.max_body_bytes
    return max(0, min(MAX_BYTES, (body_limit - FORM_OVERHEAD) * 3 // 4))


def size_text(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MiB" if size >= 1024 * 1024 else f"{size // 1024} KiB"


add_nav("Import spreadsheets", HOME, IMPORTERS, "Program")


def _page(
    request: Request,
    *,
    kind: str = "participants",
    report: ImportReport | None = None,
    error: str | None = None,
    status: int = 200,
    filename: str = "",
    content: bytes = b"",
) -> Response:
    context: dict[str, Any] = {
        "title": "Import spreadsheets",
        "kinds": IMPORT_KINDS,
        "formats": FORMATS,
        "kind": kind if kind in IMPORT_KINDS else "participants",
        "report": report,
        "error": error,
        "filename": filename,
        "content": base64.b64encode(content).decode("ascii") if report is not None and report.ok else "",
        "largest": size_text(largest_file(request)),
    }
    return render(request, "program/import.html", context, status=status)


@router.get("")
async def import_form(request: Request, user: Importer) -> Response:
    return _page(request)


@router.get("/templates/{kind}.{fmt}")
async def import_template(
    kind: Annotated[str, Path(max_length=20)], fmt: Annotated[str, Path(max_length=10)], user: Importer
) -> Response:
    body = template_bytes(kind, fmt)  # FileRefused (400) for an unknown kind or format
    headers = {
        "Content-Disposition": f'attachment; filename="{template_filename(kind, fmt)}"',
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-store",
    }
    return Response(body, media_type=MEDIA_TYPES[fmt], headers=headers)


async def _run(
    request: Request, user: CurrentUser, kind: str, filename: str, content: bytes, *, dry_run: bool
) -> Response:
    try:
        report = await run_import(
            request.app.state.database,
            user.program_id,
            kind,
            filename,
            content,
            dry_run=dry_run,
            actor=agent(user.username) or "console",
            address=request.client.host if request.client else None,
        )
    except FileRefused as refused:
        return _page(request, kind=kind, error=refused.detail, status=refused.status)
    status = 200 if report.ok else 422
    return _page(request, kind=kind, report=report, status=status, filename=filename, content=content)


@router.post("/check")
async def import_check(request: Request, user: Importer, kind: Kind, file: Annotated[UploadFile, File()]) -> Response:
    """The dry run: every row checked, nothing written."""
    largest = largest_file(request)
    content = await file.read(largest + 1)
    name = (file.filename or "")[-200:]
    if not content:
        return _page(request, kind=kind, error="Choose a file to check (it is empty or none was sent).", status=400)
    if len(content) > largest:
        error = f"The file is larger than {size_text(largest)}; split it into smaller files."
        return _page(request, kind=kind, error=error, status=413)
    return await _run(request, user, kind, name, content, dry_run=True)


@router.post("/confirm")
async def import_confirm(
    request: Request,
    user: Importer,
    kind: Kind,
    filename: Annotated[str, Form(max_length=200)],
    content: Annotated[str, Form(max_length=MAX_BYTES * 4 // 3 + 4)],
) -> Response:
    """The import itself: the checked file, sent back by the confirm form, checked again and imported."""
    try:
        data = base64.b64decode(content, validate=True)
    except (binascii.Error, ValueError):
        return _page(request, kind=kind, error="The confirmed file did not arrive intact; check it again.", status=400)
    if not data:
        return _page(request, kind=kind, error="The confirmed file is empty; check it again.", status=400)
    return await _run(request, user, kind, filename, data, dry_run=False)
