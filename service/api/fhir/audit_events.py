"""GET /fhir/AuditEvent: the audit log as FHIR AuditEvents (BALP shape), for the program's
administrators (the peerlink.admin scope), searched with the FHIR search engine
(:mod:`service.audit.search`). Newest first unless ``_sort`` says otherwise, paged with a ``_cursor``
next link; every AuditEvent served is validated with the FHIR models. The search itself is audited (admin
``audit-search``, with its query), before the Bundle is released.

Include this router in the /fhir router **before** the type-level search, which would otherwise
answer /fhir/AuditEvent with a 404 (AuditEvent is not one of the types the projection serves).
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

from mappings.models import validate
from service.api.access import AdminDep
from service.api.deps import DatabaseDep, ProgramDep
from service.audit import AuditRecord, write
from service.audit import search as audit_search
from service.audit.fhir import audit_event
from service.fhir import search
from service.fhir.search import Found

from .responses import PrettyDep, base_url, fhir_response

router = APIRouter(tags=["FHIR"])

_PARAMETERS: list[dict[str, Any]] = [
    {"name": name, "in": "query", "required": False, "schema": {"type": "string"}, "description": text}
    for name, text in (
        ("date", "When recorded: [eq|ne|gt|lt|ge|le]YYYY[-MM[-DD[Thh:mm:ss[Z]]]], repeat for a range"),
        ("patient", "Patient id (or Patient/id) whose data the event concerned"),
        ("agent", "Client id of the requester"),
        ("entity", "Resource read or changed, as Type/id (a search's results: search by their patient)"),
        ("action", "C, R, U, D or E"),
        ("outcome", "0 success, 4 refused/minor failure, 8 serious failure, 12 major failure"),
        ("type", "rest, security, admin, exchange, or an AuditEvent.type code (110112 Query, 110114 ...)"),
        ("subtype", "read, search, token, client-add ... or a restful-interaction code (search-type ...)"),
        ("_id", "The event's id"),
        ("_count", f"Page size (default {search.DEFAULT_COUNT}, at most {search.MAX_COUNT})"),
        ("_sort", "date or -date (newest first without it)"),
        ("_summary", "count: the total only"),
        ("_total", "none skips the count; accurate (default)"),
        ("_elements", "Top-level elements to keep (the event is tagged SUBSETTED)"),
        ("_cursor", "Opaque; taken from a next link"),
    )
]


def _lenient(request: Request) -> bool:
    prefer = ",".join(request.headers.getlist("prefer"))
    return any(part.strip().replace(" ", "") == "handling=lenient" for part in prefer.split(","))


@router.get(
    "/AuditEvent",
    summary="search AuditEvent (the audit log; needs peerlink.admin)",
    description=audit_search.__doc__,
    operation_id="fhir_audit_search",
    openapi_extra={"parameters": _PARAMETERS},
)
async def search_audit_events(
    request: Request, access: AdminDep, program: ProgramDep, database: DatabaseDep, pretty: PrettyDep
) -> Response:
    base = base_url(request)
    query = audit_search.parse_audit(request.query_params.multi_items(), lenient=_lenient(request), base=base)
    async with database.read() as conn:
        page = await audit_search.run(conn, program.id, query)
    codes_base = request.app.state.settings.base_url + "/fhir"
    matches = []
    for row in page.rows:
        event = audit_event(row._mapping, codes_base)
        validate(event)
        matches.append(Found(row.pk, audit_search.RESOURCE_TYPE, event["id"], orjson.dumps(event)))
    body = search.bundle(query, search.SearchResult(page.total, matches, [], page.next_cursor), base)
    await write(
        database,
        AuditRecord(
            "admin",
            "audit-search",
            "E",
            "0",
            client_id=access.client_id,
            organization=access.organization,
            address=request.client.host if request.client else None,
            program_id=program.id,
            detail={"query": request.url.query, "status": 200, "returned": len(matches)},
        ),
    )
    return fhir_response(body, pretty=pretty)
