"""The sandbox's HTTP work: a FHIR request (auth, faults, the route, the log line) and a token request."""

from __future__ import annotations

import time
from typing import Any

import structlog
from fastapi import Request
from fastapi.responses import JSONResponse, Response

from service.auth.assertion import OAuthError
from service.auth.scopes import Permissions
from service.auth.token_form import NO_STORE, error_answer, token_form
from service.domain.errors import MethodNotAllowed, NotFound, PeerLinkError

from .auth import Caller
from .capability import capability_statement
from .fhir_call import FhirCall, Result, accepts_json, wants_pretty
from .hospital import Sandbox
from .outcome import error_response, fhir_response

OPEN_CALLER = Caller("anonymous", Permissions.of(["system/*.rs"]))
log = structlog.get_logger("peerlink.sandbox")


async def serve_fhir(sandbox: Sandbox, request: Request, *, open_endpoint: bool = False) -> Response:
    started = time.perf_counter()
    root = sandbox.root(request)
    layout = sandbox.config.layout
    base = root + ((layout.open_fhir or "") if open_endpoint else layout.fhir)
    rest = str(request.path_params.get("rest", ""))
    call = FhirCall(
        request.method,
        tuple(p for p in rest.split("/") if p),
        tuple(request.query_params.multi_items()),
        dict(request.headers.items()),
        await request.body(),
    )
    client_id: str | None = None
    try:
        await sandbox.delay()
        sandbox.inject_faults()
        accepts_json(call)
        caller: Caller | None = None
        if not _is_public(call):
            caller = OPEN_CALLER if open_endpoint else await sandbox.auth.caller(call.header("authorization"), root)
            client_id = caller.client_id
        result = _route(sandbox, call, caller, root, base, open_endpoint)
        response = fhir_response(result.document, result.status, pretty=wants_pretty(call), headers=result.headers)
    except PeerLinkError as error:
        response = error_response(error, sandbox.knobs.retry_after)
    log.info(
        "fhir request",
        method=request.method,
        path=request.url.path,
        status=response.status_code,
        ms=round((time.perf_counter() - started) * 1000, 1),
        client=client_id,
    )
    return response


def _is_public(call: FhirCall) -> bool:
    return call.method == "GET" and call.parts in (("metadata",), (".well-known", "smart-configuration"))


def _route(
    sandbox: Sandbox, call: FhirCall, caller: Caller | None, root: str, base: str, open_endpoint: bool
) -> Result:
    if call.parts == ("metadata",) and call.method == "GET":
        token_url = None if open_endpoint else root + sandbox.config.layout.token
        return Result(
            200, capability_statement(sandbox.config, base, token_url, sandbox.started, open_endpoint=open_endpoint)
        )
    if call.parts == (".well-known", "smart-configuration") and call.method == "GET":
        return Result(200, discovery(sandbox, root))
    assert caller is not None
    if not call.parts:
        if call.method == "POST" and not open_endpoint:
            sandbox.refuse_bundle()
            return sandbox.fhir.transaction(call, caller, base)
        raise MethodNotAllowed("only POST (a transaction Bundle) is served at the FHIR base")
    return sandbox.fhir.handle(call, caller, base, open_endpoint=open_endpoint)


def discovery(sandbox: Sandbox, root: str) -> dict[str, Any]:
    if not sandbox.config.smart_discovery:
        raise NotFound("this EHR publishes no SMART configuration")
    return sandbox.auth.smart_configuration(root)


async def serve_token(sandbox: Sandbox, request: Request) -> JSONResponse:
    await sandbox.delay()
    root = sandbox.root(request)
    try:
        body = await sandbox.auth.token(token_form(request.headers.get("content-type"), await request.body()), root)
    except OAuthError as error:
        log.info("token refused", client=error.client_id, error=error.error, reason=error.description)
        answer, status, headers = error_answer(error)
        return JSONResponse(answer, status, headers=headers)
    log.info("token issued", scope=body.get("scope"))
    return JSONResponse(body, headers=NO_STORE)
