"""GET /fhir/Group/{id} and GET /fhir/Group?_id=&identifier=: the Group of each partner organisation
(``service.bulk.groups``), the cohort a Group-level ``$export`` covers. A partner's client sees its own
Group only; the program's own clients see every partner's."""

from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import APIRouter, Path, Request
from fastapi.responses import Response

from service.api import audit_trail
from service.api.access import AccessDep
from service.api.deps import DatabaseDep, ProgramDep
from service.bulk import groups
from service.domain.errors import BadRequest, NotFound

from .responses import PrettyDep, base_url, fhir_response

router = APIRouter(tags=["FHIR"])
GroupId = Annotated[str, Path(pattern=r"^[A-Za-z0-9\-.]{1,64}$", description="Logical id")]
_SEARCH = ("_id", "identifier")
_IGNORED = ("_format", "_pretty", "_count")


def _lenient(request: Request) -> bool:
    prefer = ",".join(request.headers.getlist("prefer"))
    return any(part.strip().replace(" ", "") == "handling=lenient" for part in prefer.split(","))


@router.get("/Group/{group_id}", summary="read (Group of a partner)", operation_id="fhir_group_read")
async def read_group(
    request: Request,
    group_id: GroupId,
    program: ProgramDep,
    access: AccessDep,
    database: DatabaseDep,
    pretty: PrettyDep,
) -> Response:
    async with database.read() as conn:
        found = await groups.partner(conn, program, group_id, access.organization)
        if found is None:
            raise NotFound("no Group with that id")
        members = await groups.members(conn, program.id, found.organization)
    await audit_trail.reading(request, access, program.id, "read", patients=members, entities=[f"Group/{group_id}"])
    return fhir_response(orjson.dumps(groups.resource(found, members)), pretty=pretty)


@router.get(
    "/Group",
    summary="search-type (Groups of partners)",
    operation_id="fhir_group_search",
    description="The partners' Groups; _id and identifier (the organisation's system|value) narrow them.",
    openapi_extra={
        "parameters": [
            {"name": name, "in": "query", "required": False, "schema": {"type": "string"}} for name in _SEARCH
        ]
    },
)
async def search_groups(
    request: Request, program: ProgramDep, access: AccessDep, database: DatabaseDep, pretty: PrettyDep
) -> Response:
    wanted: dict[str, list[str]] = {}
    for key, value in request.query_params.multi_items():
        if key in _SEARCH:
            wanted.setdefault(key, []).extend(v.strip() for v in value.split(",") if v.strip())
        elif key not in _IGNORED and not _lenient(request):
            raise BadRequest(f"unknown search parameter {key[:40]} for Group", errors=[{"expression": key[:40]}])
    base = base_url(request)
    async with database.read() as conn:
        found = [
            (p, await groups.members(conn, program.id, p.organization))
            for p in await groups.partners(conn, program, access.organization)
            if groups.matches(p, wanted.get("_id"), wanted.get("identifier"))
        ]
    await audit_trail.reading(
        request,
        access,
        program.id,
        "search",
        patients=[pid for _, members in found for pid in members],
        entities=[f"Group/{p.group_id}" for p, _ in found],
        query=f"Group?{request.url.query}",
    )
    bundle = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(found),
        "link": [{"relation": "self", "url": str(request.url)}],
        "entry": [
            {
                "fullUrl": f"{base}/Group/{p.group_id}",
                "resource": groups.resource(p, members),
                "search": {"mode": "match"},
            }
            for p, members in found
        ],
    }
    return fhir_response(orjson.dumps(bundle), pretty=pretty)
