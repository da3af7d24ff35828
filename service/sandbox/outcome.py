"""FHIR responses of the sandbox: resources as application/fhir+json, and every error as an
OperationOutcome with the status its class knows (the gateway's one error hierarchy, plus the few
statuses only an EHR answers with)."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi.responses import Response

from service.domain.errors import PeerLinkError, Unauthorized

FHIR_JSON = "application/fhir+json; charset=utf-8"


class NotAcceptable(PeerLinkError):
    status = 406
    fhir_code = "not-supported"
    title = "Not acceptable"


class Gone(PeerLinkError):
    status = 410
    fhir_code = "deleted"
    title = "Gone"


class TooManyRequests(PeerLinkError):
    status = 429
    fhir_code = "throttled"
    title = "Too many requests"


class InjectedFailure(PeerLinkError):
    """A 500 or 503 the error-rate knob answers with."""

    status = 500
    fhir_code = "exception"
    title = "Injected failure"

    def __init__(self, detail: str, status: int) -> None:
        super().__init__(detail)
        self.injected_status = status


REFUSAL_DIAGNOSTICS = {
    400: "transaction Bundles are not supported here: send each resource on its own",
    403: "the access token's scopes do not allow transaction Bundles for this client",
    405: "the transaction interaction is not allowed at this endpoint",
    422: "transaction Bundles are not supported here: send each resource on its own",
    501: "transaction is not implemented by this server",
}


class BundlesRefused(InjectedFailure):
    """The ``refuse_bundles`` knob: a transaction Bundle refused as such, with an OperationOutcome."""

    title = "Transaction Bundles refused"

    def __init__(self, status: int) -> None:
        super().__init__(REFUSAL_DIAGNOSTICS[status], status)
        self.issue_code = "forbidden" if status == 403 else "not-supported"


def json_bytes(document: Any, pretty: bool = False) -> bytes:
    return orjson.dumps(document, option=orjson.OPT_INDENT_2 if pretty else 0)


def fhir_response(
    document: Any,
    status: int = 200,
    *,
    pretty: bool = False,
    headers: dict[str, str] | None = None,
) -> Response:
    body = b"" if document is None else json_bytes(document, pretty)
    return Response(content=body, status_code=status, media_type=FHIR_JSON, headers=headers)


def operation_outcome(code: str, diagnostics: str, severity: str = "error") -> dict[str, Any]:
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": severity, "code": code, "diagnostics": diagnostics}],
    }


def error_response(error: PeerLinkError, retry_after: int | None = None) -> Response:
    status = error.injected_status if isinstance(error, InjectedFailure) else error.status
    code = "transient" if status == 503 else getattr(error, "issue_code", error.fhir_code)
    headers: dict[str, str] = {}
    if isinstance(error, Unauthorized):
        headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
    if status in (429, 503) and retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    return fhir_response(operation_outcome(code, error.detail), status, headers=headers)
