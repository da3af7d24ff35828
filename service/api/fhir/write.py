"""FHIR write interactions: a clinic's referral (ServiceRequest, Task), conditional create,
transaction Bundles, the clinic's updates of its Task (PUT, JSON Patch) and a QuestionnaireResponse
for one of the program's instruments (stored as an assessment). The use cases are in
``service.inbound``; this module reads bodies and headers and answers with stored bytes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Header, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncConnection

from service import inbound
from service.api import audit_trail
from service.api.access import Access, AccessDep
from service.api.deps import DatabaseDep, IfMatchDep, ProgramDep
from service.auth.scopes import Interaction
from service.domain import Program
from service.domain.errors import BadRequest, UnsupportedMediaType
from service.domain.instruments import Registry
from service.fhir import repository
from service.fhir.bundle import splice
from service.fhir.projection import instant
from service.fhir.repository import StoredResource
from service.inbound import questionnaire_responses
from service.store import Database

from .read import FhirId
from .responses import FHIR_JSON, PrettyDep, base_url, fhir_response

router = APIRouter(tags=["FHIR"])

FHIR_BODY = ("application/fhir+json", "application/json", "application/json+fhir")
JSON_PATCH = ("application/json-patch+json",)
IfNoneExist = Annotated[
    str | None,
    Header(
        alias="If-None-Exist",
        max_length=2000,
        description="Conditional create: a search such as identifier=system|value; a match is returned (200).",
    ),
]


def _body_doc(media_types: tuple[str, ...], schema: dict[str, Any]) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {m: {"schema": schema} for m in media_types}}}


RESOURCE_BODY = _body_doc(FHIR_BODY, {"type": "object", "description": "A FHIR R4 resource (JSON)"})
PATCH_BODY = _body_doc(JSON_PATCH, {"type": "array", "items": {"type": "object"}, "description": "RFC 6902"})


async def _json(request: Request, accepted: tuple[str, ...]) -> Any:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type not in accepted:
        raise UnsupportedMediaType(f"send the body as {' or '.join(accepted)}")
    raw = await request.body()
    if not raw.strip():
        raise BadRequest("the request has no body")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise BadRequest("the request body is not valid JSON") from None


def _resource(body: Any, resource_type: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise BadRequest(f"the body must be a {resource_type} (a JSON object)")
    if body.get("resourceType") != resource_type:
        raise inbound.bad_request("resourceType", f"expected {resource_type} at this endpoint")
    return body


def _answer(request: Request, outcome: inbound.Outcome, stored: StoredResource, pretty: bool) -> Response:
    location = f"{base_url(request)}/{stored.resource_type}/{stored.resource_id}/_history/{stored.version_id}"
    return fhir_response(
        stored.body,
        pretty=pretty,
        status=201 if outcome.created else 200,
        version_id=stored.version_id,
        last_updated=stored.last_updated,
        location=location,
    )


_WRITE_INTERACTIONS = {"POST": Interaction.CREATE, "PUT": Interaction.UPDATE, "PATCH": Interaction.UPDATE}


def _permit(access: Access) -> Callable[[str, str], None]:
    """A transaction entry's method and type against the token's scopes."""

    def permit(method: str, resource_type: str) -> None:
        access.require(resource_type, _WRITE_INTERACTIONS.get(method, Interaction.READ))

    return permit


async def _visible_or_404(
    database: Database, program_id: str, resource_type: str, resource_id: str, access: Access
) -> None:
    """An organisation's client cannot change, nor learn of, a resource outside its boundary."""
    if access.organization is not None:
        async with database.read() as conn:
            await repository.current(conn, program_id, resource_type, resource_id, access.organization)


# POST [base]/ is documented here; POST [base] itself is added where the /fhir prefix is known
# (router.py), since a router included without a prefix cannot hold an empty path.
@router.post(
    "/",
    summary="Transaction Bundle (Patient, ServiceRequest, Task and the referral's supporting resources)",
    operation_id="fhir_transaction",
    openapi_extra=RESOURCE_BODY,
    response_class=Response,
    responses={200: {"content": {FHIR_JSON: {}}, "description": "transaction-response Bundle"}},
)
async def transaction(
    request: Request, program: ProgramDep, access: AccessDep, database: DatabaseDep, pretty: PrettyDep
) -> Response:
    body = await _json(request, FHIR_BODY)
    base = base_url(request)
    permit, organization = _permit(access), access.organization

    async def work(conn: AsyncConnection) -> inbound.TransactionOutcome:
        outcome = await inbound.transaction(conn, program, body, permit=permit, organization=organization)
        await audit_trail.changing(
            conn,
            request,
            access,
            program.id,
            "transaction",
            "E",
            patients=outcome.patients,
            entities=outcome.references,
        )
        return outcome

    outcome = await inbound.run(database, work)
    return fhir_response(_transaction_response(outcome, base), pretty=pretty)


def _transaction_response(outcome: inbound.TransactionOutcome, base: str) -> bytes:
    """The transaction-response Bundle: every entry's status, location and current resource."""
    parts: list[tuple[str, bytes, dict[str, Any]]] = []
    for entry in outcome.entries:
        stored = entry.stored
        path = f"{stored.resource_type}/{stored.resource_id}"
        response = {
            "status": "201 Created" if entry.outcome.created else "200 OK",
            "location": f"{path}/_history/{stored.version_id}",
            "etag": f'W/"{stored.version_id}"',
            "lastModified": instant(stored.last_updated),
        }
        parts.append((f"{base}/{path}", stored.body, {"response": response}))
    return splice("transaction-response", parts)


async def _handle(
    request: Request,
    database: Database,
    program: Program,
    access: Access,
    pretty: bool,
    act: Callable[[AsyncConnection], Awaitable[inbound.Outcome]],
) -> Response:
    """Run one inbound use case (retried if it lost an identifier race) and answer with what it stored."""

    async def work(conn: AsyncConnection) -> tuple[inbound.Outcome, StoredResource]:
        outcome = await act(conn)
        stored = await inbound.written(conn, program.id, outcome, access.organization)
        subtype = {"POST": "create", "PUT": "update", "PATCH": "patch"}[request.method]
        await audit_trail.changing(
            conn,
            request,
            access,
            program.id,
            subtype,
            "C" if outcome.created else "U",
            patients=[stored.patient_id],
            entities=[f"{stored.resource_type}/{stored.resource_id}"],
        )
        return outcome, stored

    outcome, stored = await inbound.run(database, work)
    return _answer(request, outcome, stored, pretty)


@router.post(
    "/ServiceRequest",
    summary="Receive a clinic's referral (conditional create with If-None-Exist)",
    operation_id="fhir_create_service_request",
    openapi_extra=RESOURCE_BODY,
    response_class=Response,
    status_code=201,
    responses={200: {"description": "If-None-Exist matched, or the order was delivered before"}},
)
async def create_service_request(
    request: Request,
    program: ProgramDep,
    access: AccessDep,
    database: DatabaseDep,
    pretty: PrettyDep,
    if_none_exist: IfNoneExist = None,
) -> Response:
    body = _resource(await _json(request, FHIR_BODY), "ServiceRequest")

    return await _handle(
        request,
        database,
        program,
        access,
        pretty,
        lambda conn: inbound.receive_referral(
            conn, program, body, if_none_exist=if_none_exist, organization=access.organization
        ),
    )


@router.post(
    "/Task",
    summary="Receive a clinic's Task for a ServiceRequest held here (restates it; creates nothing)",
    operation_id="fhir_create_task",
    openapi_extra=RESOURCE_BODY,
    response_class=Response,
)
async def create_task(
    request: Request, program: ProgramDep, access: AccessDep, database: DatabaseDep, pretty: PrettyDep
) -> Response:
    body = _resource(await _json(request, FHIR_BODY), "Task")

    return await _handle(
        request, database, program, access, pretty, lambda conn: inbound.receive_task(conn, program, body)
    )


@router.put(
    "/Task/{resource_id}",
    summary="The clinic's update of a referral's Task (it may cancel)",
    operation_id="fhir_update_task",
    openapi_extra=RESOURCE_BODY,
    response_class=Response,
)
async def update_task(
    request: Request,
    resource_id: FhirId,
    program: ProgramDep,
    access: AccessDep,
    database: DatabaseDep,
    expected_version: IfMatchDep,
    pretty: PrettyDep,
) -> Response:
    body = await _json(request, FHIR_BODY)

    await _visible_or_404(database, program.id, "Task", resource_id, access)
    return await _handle(
        request,
        database,
        program,
        access,
        pretty,
        lambda conn: inbound.update_task(conn, program, resource_id, body, expected_version=expected_version),
    )


@router.patch(
    "/Task/{resource_id}",
    summary="The clinic's JSON Patch of a referral's Task (it may cancel)",
    operation_id="fhir_patch_task",
    openapi_extra=PATCH_BODY,
    response_class=Response,
)
async def patch_task(
    request: Request,
    resource_id: FhirId,
    program: ProgramDep,
    access: AccessDep,
    database: DatabaseDep,
    expected_version: IfMatchDep,
    pretty: PrettyDep,
) -> Response:
    patch = await _json(request, JSON_PATCH)

    await _visible_or_404(database, program.id, "Task", resource_id, access)
    return await _handle(
        request,
        database,
        program,
        access,
        pretty,
        lambda conn: inbound.patch_task(conn, program, resource_id, patch, expected_version=expected_version),
    )


@router.post(
    "/QuestionnaireResponse",
    summary="Receive a completed questionnaire for one of the program's instruments: scored and stored as an "
    "assessment (conditional create with If-None-Exist: identifier=system|value)",
    operation_id="fhir_create_questionnaire_response",
    openapi_extra=RESOURCE_BODY,
    response_class=Response,
    status_code=201,
    responses={200: {"description": "If-None-Exist matched, or the response was delivered before"}},
)
async def create_questionnaire_response(
    request: Request,
    program: ProgramDep,
    access: AccessDep,
    database: DatabaseDep,
    pretty: PrettyDep,
    if_none_exist: IfNoneExist = None,
) -> Response:
    body = _resource(await _json(request, FHIR_BODY), "QuestionnaireResponse")
    registry: Registry = request.app.state.instruments

    async def work(conn: AsyncConnection) -> tuple[inbound.Outcome, StoredResource]:
        received = await questionnaire_responses.receive_questionnaire_response(
            conn, program, body, registry, if_none_exist=if_none_exist, organization=access.organization
        )
        stored = await questionnaire_responses.stored_response(conn, program, received, registry)
        await audit_trail.changing(
            conn,
            request,
            access,
            program.id,
            "create",
            "C" if received.outcome.created else "U",
            patients=[stored.patient_id],
            entities=[f"{stored.resource_type}/{stored.resource_id}"],
        )
        return received.outcome, stored

    outcome, stored = await inbound.run(database, work)
    return _answer(request, outcome, stored, pretty)
