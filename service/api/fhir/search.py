"""FHIR search interactions: GET /fhir/{type}?... and POST /fhir/{type}/_search (form-encoded body)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any
from urllib.parse import parse_qsl, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response

from service.api import audit_trail
from service.api.access import Access, AccessDep
from service.api.deps import DatabaseDep, ProgramDep
from service.domain.errors import BadRequest, UnsupportedMediaType
from service.fhir import search

from .responses import PrettyDep, base_url, fhir_response, resource_type_of

router = APIRouter(tags=["FHIR"])
FORM = "application/x-www-form-urlencoded"
MAX_FIELDS = 200

_CONTROLS: list[dict[str, Any]] = [
    {"name": name, "in": "query", "required": False, "schema": {"type": "string"}, "description": text}
    for name, text in (
        ("_id", "Logical id(s), comma-separated"),
        ("_lastUpdated", "Date with prefix eq, ne, gt, lt, ge or le, e.g. ge2026-01-01"),
        ("_count", f"Page size (default {search.DEFAULT_COUNT}, at most {search.MAX_COUNT})"),
        ("_sort", "_lastUpdated, -_lastUpdated, date, -date (or a date parameter of the type)"),
        ("_summary", "count: the total only"),
        ("_elements", "Top-level elements to keep (the resource is tagged SUBSETTED)"),
        ("_include", "Type:parameter[:TargetType], repeatable"),
        ("_revinclude", "Type:parameter[:TargetType], repeatable"),
        ("_total", "none skips the count; accurate (default: counted on the first page, repeated by later pages)"),
        ("_cursor", "Opaque; taken from a next link"),
    )
]
_DESCRIPTION = (
    "FHIR R4 search. The parameters each type supports (token, reference, date, string; modifiers "
    ":missing, :not on tokens, :exact and :contains on strings, :[type] on references) are listed in "
    "the CapabilityStatement. Comma = OR, a repeated parameter = AND. Unknown parameters are a 400 "
    "unless the request says `Prefer: handling=lenient`."
)


def _lenient(request: Request) -> bool:
    prefer = ",".join(request.headers.getlist("prefer"))
    return any(part.strip().replace(" ", "") == "handling=lenient" for part in prefer.split(","))


async def search_resources(
    request: Request,
    resource_type: str,
    program_id: str,
    access: Access,
    database: DatabaseDep,
    pretty: bool,
    items: list[Any],
) -> Response:
    resource_type = resource_type_of(resource_type)
    base = base_url(request)
    query = search.parse(resource_type, items, lenient=_lenient(request), base=base)
    async with database.read_lazily() as conn:
        once = None if database.is_sqlite else database.driver
        result = await search.run(conn, program_id, query, access.organization, once)
    # included resources of a type the token may not read are left out (SMART scopes hold for includes too)
    result = replace(result, included=[f for f in result.included if access.may_read(f.resource_type)])
    returned = [*result.matches, *result.included]
    await audit_trail.reading(
        request,
        access,
        program_id,
        "search",
        patients=[f.patient_id for f in returned],
        entities=[f"{f.resource_type}/{f.resource_id}" for f in returned],
        query=f"{resource_type}?{urlencode(items)}",
    )
    return fhir_response(search.bundle(query, result, base), pretty=pretty)


async def _form(request: Request) -> list[tuple[str, str]]:
    body = await request.body()
    if not body.strip():
        return []
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != FORM:
        raise UnsupportedMediaType(f"send the search parameters as {FORM}")
    try:
        return parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=MAX_FIELDS)
    except (UnicodeDecodeError, ValueError):
        raise BadRequest("the form body is not valid application/x-www-form-urlencoded UTF-8") from None


@router.get(
    "/{resource_type}",
    summary="search-type",
    description=_DESCRIPTION,
    operation_id="fhir_search",
    openapi_extra={"parameters": _CONTROLS},
)
async def search_get(
    request: Request,
    resource_type: str,
    program: ProgramDep,
    access: AccessDep,
    database: DatabaseDep,
    pretty: PrettyDep,
) -> Response:
    items = request.query_params.multi_items()
    return await search_resources(request, resource_type, program.id, access, database, pretty, items)


@router.post(
    "/{resource_type}/_search",
    summary="search-type (POST)",
    description=_DESCRIPTION + " The parameters may be sent in the form-encoded body, the query string or both.",
    operation_id="fhir_search_post",
    openapi_extra={
        "requestBody": {
            "required": False,
            "content": {FORM: {"schema": {"type": "object", "additionalProperties": {"type": "string"}}}},
        }
    },
)
async def search_post(
    request: Request,
    resource_type: str,
    program: ProgramDep,
    access: AccessDep,
    database: DatabaseDep,
    pretty: PrettyDep,
) -> Response:
    items = [*request.query_params.multi_items(), *await _form(request)]
    return await search_resources(request, resource_type, program.id, access, database, pretty, items)
