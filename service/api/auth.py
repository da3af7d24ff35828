"""The embedded authorization server's HTTP face: SMART discovery, the token endpoint, our JWKS."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from service.audit import AuditRecord, write
from service.auth.runtime import Security
from service.auth.scopes import ADMIN_SCOPE
from service.auth.server import ASSERTION_ALGS, OAuthError
from service.auth.token_form import FORM, NO_STORE, error_answer, token_form

router = APIRouter(tags=["Authorization"])
SCOPES_SUPPORTED = [
    "system/*.cruds",
    "system/*.rs",
    "system/*.read",
    "system/*.write",
    "system/Patient.rs",
    "system/Encounter.rs",
    "system/DocumentReference.rs",
    "system/ServiceRequest.crus",
    "system/Task.crus",
    ADMIN_SCOPE,
]
_OAUTH_ERROR = {
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["error"],
                "properties": {"error": {"type": "string"}, "error_description": {"type": "string"}},
            }
        }
    }
}


def _security(request: Request) -> Security:
    security: Security = request.app.state.security
    return security


@router.get(
    "/.well-known/smart-configuration",
    summary="SMART configuration (backend services)",
    operation_id="smart_configuration",
)
async def smart_configuration(request: Request) -> dict[str, Any]:
    base = _security(request).settings.base_url
    return {
        "issuer": base,
        "jwks_uri": f"{base}/auth/jwks",
        "token_endpoint": f"{base}/auth/token",
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": list(ASSERTION_ALGS),
        "grant_types_supported": ["client_credentials"],
        "scopes_supported": SCOPES_SUPPORTED,
        "response_types_supported": ["token"],
        "capabilities": ["client-confidential-asymmetric", "permission-v1", "permission-v2"],
    }


@router.get("/auth/jwks", summary="The gateway's token-signing public keys", operation_id="auth_jwks")
async def jwks(request: Request) -> dict[str, Any]:
    return _security(request).keys.public_jwks()


def _address(request: Request) -> str | None:
    return request.client.host if request.client else None


@router.post(
    "/auth/token",
    summary="Token endpoint: client_credentials with a JWT client assertion (RS384 or ES384)",
    operation_id="auth_token",
    responses={  # RFC 6749 section 5.2 errors; a body over the size limit is still a problem document
        400: {"description": "invalid_request, invalid_client, invalid_grant, invalid_scope ...", **_OAUTH_ERROR},
        401: {"description": "invalid_client", **_OAUTH_ERROR},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {FORM: {"schema": {"type": "object", "additionalProperties": {"type": "string"}}}},
        }
    },
)
async def token(request: Request) -> JSONResponse:
    security = _security(request)
    try:
        form = token_form(request.headers.get("content-type"), await request.body())
        granted = await security.server.token(form)
    except OAuthError as error:
        await write(
            security.database,
            AuditRecord(
                "security",
                "token",
                "E",
                "4",
                client_id=error.client_id,
                address=_address(request),
                detail={"error": error.error, "reason": error.description},
            ),
        )
        request.app.state.metrics.token_failures.labels(error.error).inc()
        body, status, headers = error_answer(error)
        return JSONResponse(body, status_code=status, headers=headers)
    await write(
        security.database,
        AuditRecord(
            "security",
            "token",
            "E",
            "0",
            client_id=granted.client.client_id,
            organization=granted.client.organization,
            program_id=granted.client.program_id,
            address=_address(request),
            detail={"scope": granted.body.get("scope", "")},
        ),
    )
    request.app.state.metrics.tokens.labels(granted.client.client_id).inc()
    return JSONResponse(granted.body, headers=NO_STORE)
