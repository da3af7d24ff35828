"""Bulk Data Access 2.0 ``$export`` (https://hl7.org/fhir/uv/bulkdata/export.html): the kick-off at
system, Patient and Group level (GET, or POST with a Parameters body), the status URL (202 with
X-Progress and Retry-After while the job runs, then the manifest; DELETE cancels) and the files.

Only the client that started a job sees it: for any other client it does not exist (404). The
export itself runs in the worker (``service.bulk``) inside the client's data boundary.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Path, Request
from fastapi.responses import FileResponse, Response, StreamingResponse
from starlette.concurrency import iterate_in_threadpool

from service.api.access import Access, AccessDep
from service.api.deps import DatabaseDep, ProgramDep
from service.bulk import groups, jobs, params
from service.bulk.runner import storage_of
from service.bulk.storage import LocalStorage
from service.domain.errors import BadRequest, Forbidden, NotFound, PeerLinkError
from service.fhir.projection import instant
from service.fhir.search_params import SEARCH_PARAMS

from .responses import base_url

router = APIRouter(tags=["FHIR Bulk Data"])
NDJSON = "application/fhir+ndjson"
RETRY_AFTER_SECONDS = 2
JobId = Annotated[str, Path(pattern=r"^[a-f0-9]{32}$", description="The export job (from Content-Location)")]
GroupId = Annotated[str, Path(pattern=r"^[A-Za-z0-9\-.]{1,64}$", description="A partner's Group id")]
FileName = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9\-.]{0,99}\.ndjson$", description="From the manifest")]
_KICKOFF = (
    "Bulk Data $export kick-off. Needs `Prefer: respond-async`; answers 202 with the status URL in "
    "Content-Location. Parameters: _type, _since (instant), _typeFilter (Type?search-query, the "
    "search parameters of the type), _outputFormat (application/fhir+ndjson). A parameter that "
    "cannot be honoured is a 400 unless `Prefer: handling=lenient` (then the manifest's error file "
    "says what was ignored). The export holds what the client could read, and types its scopes allow."
)
_PARAMS: list[dict[str, Any]] = [
    {"name": name, "in": "query", "required": False, "schema": {"type": "string"}, "description": text}
    for name, text in (
        ("_type", "Comma-separated resource types (default: every type the token may read)"),
        ("_since", "Only resources changed after this instant"),
        ("_typeFilter", "Type?search-query, comma-separated or repeated (OR per type)"),
        ("_outputFormat", "application/fhir+ndjson (also application/ndjson, ndjson)"),
    )
]
_PARAMETERS_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/fhir+json": {"schema": {"type": "object", "additionalProperties": True}}},
    }
}


class ExportFailed(PeerLinkError):
    status = 500
    fhir_code = "exception"
    title = "Export failed"


def _prefer(request: Request) -> set[str]:
    header = ",".join(request.headers.getlist("prefer"))
    return {part.strip().replace(" ", "").lower() for part in header.split(",") if part.strip()}


async def _items(request: Request) -> list[tuple[str, str]]:
    if request.method != "POST":
        return request.query_params.multi_items()
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type not in ("application/fhir+json", "application/json"):
        raise BadRequest("POST $export takes a Parameters resource as application/fhir+json")
    try:
        body = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        raise BadRequest("the body is not JSON") from None
    return [*request.query_params.multi_items(), *params.from_parameters(body)]


async def _kickoff(
    request: Request,
    level: params.Level,
    program_id: str,
    access: Access,
    database: DatabaseDep,
    group: str | None = None,
) -> Response:
    prefer = _prefer(request)
    if "respond-async" not in prefer:
        raise BadRequest("$export runs asynchronously: send Prefer: respond-async", errors=[{"expression": "Prefer"}])
    readable = [t for t in SEARCH_PARAMS if access.may_read(t)]
    if not readable:
        raise Forbidden("the token's scopes allow reading no resource type (needs system/*.rs or system/Type.rs)")
    items = await _items(request)
    request_data = params.parse(
        items, level=level, readable=readable, lenient="handling=lenient" in prefer, group=group
    )
    settings = request.app.state.settings
    async with database.transaction() as conn:
        job_id = await jobs.create(
            conn,
            program_id=program_id,
            client_id=access.client_id,
            organization=access.organization,
            request_url=str(request.url),
            request=request_data,
            now=datetime.now(UTC),
            retention=timedelta(seconds=settings.export_retention_seconds),
        )
    return Response(status_code=202, headers={"Content-Location": f"{base_url(request)}/$export-status/{job_id}"})


@router.get(
    "/$export",
    summary="$export (system)",
    description=_KICKOFF,
    operation_id="fhir_export",
    openapi_extra={"parameters": _PARAMS},
    status_code=202,
)
async def export_system(request: Request, program: ProgramDep, access: AccessDep, database: DatabaseDep) -> Response:
    return await _kickoff(request, "system", program.id, access, database)


@router.post(
    "/$export",
    summary="$export (system, POST)",
    description=_KICKOFF,
    operation_id="fhir_export_post",
    openapi_extra=_PARAMETERS_BODY,
    status_code=202,
)
async def export_system_post(
    request: Request, program: ProgramDep, access: AccessDep, database: DatabaseDep
) -> Response:
    return await _kickoff(request, "system", program.id, access, database)


@router.get(
    "/Patient/$export",
    summary="$export (Patient)",
    description=_KICKOFF,
    operation_id="fhir_patient_export",
    openapi_extra={"parameters": _PARAMS},
    status_code=202,
)
async def export_patients(request: Request, program: ProgramDep, access: AccessDep, database: DatabaseDep) -> Response:
    return await _kickoff(request, "patient", program.id, access, database)


@router.post(
    "/Patient/$export",
    summary="$export (Patient, POST)",
    description=_KICKOFF,
    operation_id="fhir_patient_export_post",
    openapi_extra=_PARAMETERS_BODY,
    status_code=202,
)
async def export_patients_post(
    request: Request, program: ProgramDep, access: AccessDep, database: DatabaseDep
) -> Response:
    return await _kickoff(request, "patient", program.id, access, database)


async def _group(request: Request, group_id: str, program: Any, access: Access, database: DatabaseDep) -> Response:
    async with database.read() as conn:
        found = await groups.partner(conn, program, group_id, access.organization)
    if found is None:
        raise NotFound("no Group with that id")
    return await _kickoff(request, "group", program.id, access, database, group=found.organization)


@router.get(
    "/Group/{group_id}/$export",
    summary="$export (Group)",
    description=_KICKOFF,
    operation_id="fhir_group_export",
    openapi_extra={"parameters": _PARAMS},
    status_code=202,
)
async def export_group(
    request: Request, group_id: GroupId, program: ProgramDep, access: AccessDep, database: DatabaseDep
) -> Response:
    return await _group(request, group_id, program, access, database)


@router.post(
    "/Group/{group_id}/$export",
    summary="$export (Group, POST)",
    description=_KICKOFF,
    operation_id="fhir_group_export_post",
    openapi_extra=_PARAMETERS_BODY,
    status_code=202,
)
async def export_group_post(
    request: Request, group_id: GroupId, program: ProgramDep, access: AccessDep, database: DatabaseDep
) -> Response:
    return await _group(request, group_id, program, access, database)


async def _job(database: DatabaseDep, job_id: str, program_id: str, access: Access) -> jobs.Job:
    async with database.read() as conn:
        job = await jobs.get(conn, job_id, access.client_id)
    if job is None or job.program_id != program_id or job.organization != access.organization:
        raise NotFound("no export with that id (or it was deleted)")
    if job.state == jobs.CANCELLED:
        raise NotFound("that export was cancelled")
    return job


def manifest(job: jobs.Job, base: str) -> dict[str, Any]:
    stored = job.manifest or {}

    def files(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [
            {"type": item["type"], "url": f"{base}/$export-file/{job.id}/{item['file']}", "count": item["count"]}
            for item in items
        ]

    return {
        "transactionTime": instant(job.transaction_time),
        "request": job.request_url,
        "requiresAccessToken": True,
        "output": files(stored.get("output", [])),
        "error": files(stored.get("error", [])),
    }


@router.get(
    "/$export-status/{job_id}",
    summary="$export status",
    operation_id="fhir_export_status",
    description="202 with X-Progress and Retry-After while the export runs; 200 with the manifest once "
    "done; 404 for an unknown, cancelled or expired export (or another client's).",
)
async def export_status(
    request: Request, job_id: JobId, program: ProgramDep, access: AccessDep, database: DatabaseDep
) -> Response:
    job = await _job(database, job_id, program.id, access)
    if job.state in (jobs.QUEUED, jobs.RUNNING):
        progress = "queued" if job.state == jobs.QUEUED else f"running: {job.progress} resources written"
        headers = {"X-Progress": progress, "Retry-After": str(RETRY_AFTER_SECONDS)}
        return Response(status_code=202, headers=headers)
    if job.state == jobs.FAILED:
        raise ExportFailed(job.error or "the export failed")
    body = orjson.dumps(manifest(job, base_url(request)))
    expires = job.finished_at or job.created_at
    headers = {"Expires": _http_date(expires + timedelta(seconds=request.app.state.settings.export_retention_seconds))}
    return Response(body, status_code=200, media_type="application/json", headers=headers)


def _http_date(moment: datetime) -> str:
    from email.utils import format_datetime

    return format_datetime(moment.astimezone(UTC), usegmt=True)


@router.delete(
    "/$export-status/{job_id}", summary="Cancel or delete an export", status_code=202, operation_id="fhir_export_cancel"
)
async def export_cancel(
    request: Request, job_id: JobId, program: ProgramDep, access: AccessDep, database: DatabaseDep
) -> Response:
    job = await _job(database, job_id, program.id, access)
    async with database.transaction() as conn:
        if job.state == jobs.RUNNING:  # its worker sees the cancellation at its next chunk and removes the files
            await jobs.finish(conn, job.id, jobs.CANCELLED, datetime.now(UTC))
        else:
            await jobs.remove(conn, job.id)
    if job.state != jobs.RUNNING:
        await asyncio.to_thread(storage_of(request.app.state.settings).delete, job.id)
    return Response(status_code=202)


@router.get(
    "/$export-file/{job_id}/{name}",
    summary="An export file (NDJSON)",
    operation_id="fhir_export_file",
    response_class=Response,
    responses={200: {"content": {NDJSON: {}}}},
    description="A file of a finished export's manifest, to the client that started it, as "
    "application/fhir+ndjson: one resource per line, the stored bytes as reads serve them.",
)
async def export_file(
    job_id: JobId, name: FileName, program: ProgramDep, access: AccessDep, database: DatabaseDep, request: Request
) -> Response:
    job = await _job(database, job_id, program.id, access)
    storage = storage_of(request.app.state.settings)
    if isinstance(storage, LocalStorage):  # a local file: sent by the server's file response
        path = storage.path(job.id, name) if job.state == jobs.DONE else None
        if path is None:
            raise NotFound("no such file in that export")
        return FileResponse(path, media_type=NDJSON)
    if job.state != jobs.DONE or not await asyncio.to_thread(storage.exists, job.id, name):
        raise NotFound("no such file in that export")
    return StreamingResponse(iterate_in_threadpool(storage.chunks(job.id, name)), media_type=NDJSON)
