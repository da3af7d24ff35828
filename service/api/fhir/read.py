"""read, vread and history (instance and type level) from the stored canonical JSON."""

from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from pydantic import AwareDatetime

from service.api import audit_trail
from service.api.access import Access, AccessDep
from service.api.deps import DatabaseDep, ProgramDep
from service.auth.boundary import compartment_patient
from service.fhir import repository
from service.fhir.bundle import splice
from service.fhir.projection import instant
from service.store import Database

from .responses import PrettyDep, base_url, fhir_response, resource_type_of

router = APIRouter(tags=["FHIR"])
FHIR_ID = r"^[A-Za-z0-9\-.]{1,64}$"
FhirId = Annotated[str, Path(pattern=FHIR_ID, description="Logical id")]
Since = Annotated[AwareDatetime | None, Query(alias="_since", description="Only versions from this instant")]
Count = Annotated[int, Query(alias="_count", ge=1, le=500, description="Page size")]
Cursor = Annotated[str | None, Query(alias="_cursor", max_length=200, description="From a next link")]


async def _history(
    request: Request,
    program_id: str,
    access: Access,
    database: DatabaseDep,
    resource_type: str,
    resource_id: str | None,
    since: AwareDatetime | None,
    count: int,
    cursor: str | None,
    pretty: bool,
) -> Response:
    resource_type = resource_type_of(resource_type)
    async with database.read() as conn:
        page = await repository.history(
            conn,
            program_id,
            resource_type,
            resource_id,
            since=since,
            count=count,
            cursor=cursor,
            organization=access.organization,
        )
    await audit_trail.reading(
        request,
        access,
        program_id,
        "history",
        patients=[compartment_patient(orjson.loads(e.body)) for e in page.entries],
        entities=[f"{e.resource_type}/{e.resource_id}" for e in page.entries],
        interaction="history-instance" if resource_id else "history-type",
    )
    base = base_url(request)
    links = [("self", str(request.url))]
    if page.next_cursor:
        links.append(("next", str(request.url.include_query_params(_cursor=page.next_cursor))))
    entries = (
        (
            f"{base}/{e.resource_type}/{e.resource_id}/_history/{e.version_id}",
            e.body,
            {
                "request": {
                    "method": "POST" if e.version_id == 1 else "PUT",
                    "url": f"{e.resource_type}/{e.resource_id}",
                },
                "response": {"status": "201" if e.version_id == 1 else "200", "lastModified": instant(e.last_updated)},
            },
        )
        for e in page.entries
    )
    return fhir_response(splice("history", entries, links=links), pretty=pretty)


@router.get("/{resource_type}/_history", summary="Type-level history", operation_id="fhir_history_type")
async def history_type(
    request: Request,
    resource_type: str,
    program: ProgramDep,
    access: AccessDep,
    database: DatabaseDep,
    pretty: PrettyDep,
    since: Since = None,
    count: Count = 50,
    cursor: Cursor = None,
) -> Response:
    return await _history(request, program.id, access, database, resource_type, None, since, count, cursor, pretty)


@router.get("/{resource_type}/{resource_id}/_history/{version_id}", summary="vread", operation_id="fhir_vread")
async def vread(
    request: Request,
    resource_type: str,
    resource_id: FhirId,
    version_id: Annotated[int, Path(ge=1)],
    program: ProgramDep,
    access: AccessDep,
    database: DatabaseDep,
    pretty: PrettyDep,
) -> Response:
    resource_type = resource_type_of(resource_type)
    async with database.read() as conn:
        found = await repository.version(conn, program.id, resource_type, resource_id, version_id, access.organization)
    await audit_trail.reading(
        request,
        access,
        program.id,
        "vread",
        patients=[compartment_patient(orjson.loads(found.body))],
        entities=[f"{resource_type}/{resource_id}/_history/{version_id}"],
    )
    return fhir_response(found.body, pretty=pretty, version_id=found.version_id, last_updated=found.last_updated)


@router.get("/{resource_type}/{resource_id}/_history", summary="Instance history", operation_id="fhir_history")
async def history_instance(
    request: Request,
    resource_type: str,
    resource_id: FhirId,
    program: ProgramDep,
    access: AccessDep,
    database: DatabaseDep,
    pretty: PrettyDep,
    since: Since = None,
    count: Count = 50,
    cursor: Cursor = None,
) -> Response:
    return await _history(
        request, program.id, access, database, resource_type, resource_id, since, count, cursor, pretty
    )


@router.get("/{resource_type}/{resource_id}", summary="read", operation_id="fhir_read")
async def read(
    request: Request,
    resource_type: str,
    resource_id: FhirId,
    program: ProgramDep,
    access: AccessDep,
    database: DatabaseDep,
    pretty: PrettyDep,
) -> Response:
    return await read_resource(request, access, database, program.id, resource_type, resource_id, pretty)


async def read_resource(
    request: Request,
    access: Access,
    database: Database,
    program_id: str,
    resource_type: str,
    resource_id: str,
    pretty: bool = False,
) -> Response:
    """The read interaction once the client, its program and the format are settled (also the hot path's)."""
    resource_type = resource_type_of(resource_type)
    found = await repository.read_current(database, program_id, resource_type, resource_id, access.organization)
    await audit_trail.reading(
        request, access, program_id, "read", patients=[found.patient_id], entities=[f"{resource_type}/{resource_id}"]
    )
    return fhir_response(found.body, pretty=pretty, version_id=found.version_id, last_updated=found.last_updated)
