"""The one place where errors become responses: RFC 7807 problem+json (peer API, everything else)."""

from __future__ import annotations

import re
import traceback
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from service.audit import AuditRecord, write
from service.domain.errors import Forbidden, PeerLinkError, Unauthorized

PROBLEM_JSON = "application/problem+json"
log = structlog.get_logger("peerlink.errors")

_TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    412: "Precondition failed",
    413: "Payload too large",
    415: "Unsupported media type",
    422: "Unprocessable content",
    429: "Too many requests",
    500: "Internal server error",
    503: "Service unavailable",
}


def title(status: int) -> str:
    """The problem title of an HTTP status."""
    return _TITLES.get(status, "Error")


FHIR_JSON = "application/fhir+json"
FHIR_PREFIX = "/fhir"
_FHIR_CODES = {
    400: "invalid",
    401: "login",
    403: "forbidden",
    404: "not-found",
    405: "not-supported",
    406: "not-supported",
    409: "conflict",
    412: "conflict",
    413: "too-costly",
    415: "not-supported",
    422: "processing",
    429: "throttled",
    500: "exception",
    503: "transient",
}


def error_document(
    path: str,
    status: int,
    detail: str,
    request_id: str | None,
    *,
    title: str | None = None,
    fhir_code: str | None = None,
    errors: list[dict[str, Any]] | None = None,
) -> tuple[dict[str, Any], str]:
    """The error body and its media type: an OperationOutcome under /fhir, problem+json elsewhere."""
    if path == FHIR_PREFIX or path.startswith(FHIR_PREFIX + "/"):
        issue: dict[str, Any] = {
            "severity": "error",
            "code": fhir_code or _FHIR_CODES.get(status, "processing"),
            "diagnostics": f"{detail} (request id {request_id})" if request_id else detail,
        }
        expressions = [str(e["expression"]) for e in errors or [] if e.get("expression")]
        if expressions:
            issue["expression"] = expressions
        extra = [
            {"severity": "error", "code": "invalid", "diagnostics": f"{'.'.join(map(str, e['loc']))}: {e['msg']}"}
            for e in errors or []
            if e.get("loc") and not e.get("expression")
        ]
        return {"resourceType": "OperationOutcome", "issue": [issue, *extra]}, FHIR_JSON
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": title or _TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        "instance": path,
        "request_id": request_id,
    }
    if errors:
        body["errors"] = errors
    return body, PROBLEM_JSON


def problem(
    request: Request,
    status: int,
    detail: str,
    *,
    errors: list[dict[str, Any]] | None = None,
    title: str | None = None,
    headers: dict[str, str] | None = None,
    fhir_code: str | None = None,
) -> Response:
    body, media_type = error_document(
        request.url.path,
        status,
        detail,
        getattr(request.state, "request_id", None),
        title=title,
        fhir_code=fhir_code,
        errors=errors,
    )
    return JSONResponse(body, status_code=status, media_type=media_type, headers=headers)


def _clean_validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    """Where and why, never the offending input (it may be PHI)."""
    return [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in exc.errors()]


async def _on_peerlink_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, PeerLinkError)
    headers = None
    if isinstance(exc, Unauthorized | Forbidden):
        await _audit_refusal(request, exc)
    if isinstance(exc, Unauthorized):
        headers = {"WWW-Authenticate": 'Bearer realm="peerlink", error="invalid_token"'}
    return problem(
        request, exc.status, exc.detail, errors=exc.errors, title=exc.title, fhir_code=exc.fhir_code, headers=headers
    )


async def _audit_refusal(request: Request, exc: PeerLinkError) -> None:
    """Every 401 and 403 is recorded: who (as far as known), from where, what they asked for and why not."""
    access = getattr(request.state, "access", None)
    record = AuditRecord(
        "security",
        "access-refused",
        "E",
        "4",
        client_id=access.client_id if access else getattr(request.state, "client_id", None),
        organization=access.organization if access else None,
        program_id=access.program_id if access else None,
        address=request.client.host if request.client else None,
        detail={"status": exc.status, "method": request.method, "path": request.url.path, "reason": exc.detail},
    )
    await write(request.app.state.database, record)


async def _on_validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = _clean_validation_errors(exc)
    if any(e["type"] == "json_invalid" for e in errors):
        return problem(request, 400, "the request body is not valid JSON", errors=errors)
    return problem(request, 422, "the request does not match the expected schema", errors=errors)


def _allowed_methods(request: Request) -> str | None:
    """Every method the path answers to, over all the route templates it matches (the router
    names only the first route that matched)."""
    allowed: set[str] = set()
    for template, operations in request.app.openapi().get("paths", {}).items():
        pattern = "^" + re.sub(r"\\{[^/]+\\}", "[^/]+", re.escape(template)) + "$"
        if re.match(pattern, request.url.path):
            allowed.update(method.upper() for method in operations)
    return ", ".join(sorted(allowed)) or None


async def _on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    headers = dict(exc.headers) if exc.headers else None
    if exc.status_code == 405:
        allowed = _allowed_methods(request)
        if allowed:
            headers = {**(headers or {}), "Allow": allowed}
    detail = exc.detail if isinstance(exc.detail, str) else _TITLES.get(exc.status_code, "Error")
    return problem(request, exc.status_code, detail, headers=headers)


async def _on_unexpected(request: Request, exc: Exception) -> Response:
    # Type and frames only: an exception's message can carry SQL parameters or record contents.
    frames = [f"{f.filename}:{f.lineno}:{f.name}" for f in traceback.extract_tb(exc.__traceback__)[-5:]]
    log.error("unhandled_error", error_type=type(exc).__name__, frames=frames)
    return problem(request, 500, "an unexpected error occurred; quote the request id when reporting it")


def install(app: FastAPI) -> None:
    app.add_exception_handler(PeerLinkError, _on_peerlink_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(Exception, _on_unexpected)
