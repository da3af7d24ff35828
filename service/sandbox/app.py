"""The sandbox EHR as a FastAPI app: ``create_sandbox_app(config)``.

``Sandbox`` (``hospital``) holds one simulated hospital (store, client registry, tokens, knobs); the
app's routes are thin: SMART discovery, the token endpoint, the FHIR base(s) (``serving``) and the
admin API. The same ``Sandbox`` object is the programmatic surface for scenarios run in-process
(``sandbox_of(app)``): register clients, file clinic referrals, read state, change knobs.
"""

from __future__ import annotations

import secrets
from typing import Annotated, Any

from fastapi import Body, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from service.auth.clients import RegisteredClient
from service.domain.errors import BadRequest, PeerLinkError

from . import clinic, subscriber
from .config import ADMIN_HEADER, ClientRegistration, Knobs, SandboxConfig
from .hospital import Sandbox, load_clients_file
from .outcome import error_response, fhir_response, operation_outcome
from .serving import discovery, serve_fhir, serve_token

__all__ = ["Sandbox", "create_sandbox_app", "load_clients_file", "sandbox_of"]


class AdminSecretRequired(PeerLinkError):
    status = 401
    fhir_code = "security"
    title = "Admin secret required"


def sandbox_of(app: FastAPI) -> Sandbox:
    """The ``Sandbox`` behind an app made by :func:`create_sandbox_app`."""
    sandbox: Sandbox = app.state.sandbox
    return sandbox


async def _sandbox(request: Request) -> Sandbox:
    return sandbox_of(request.app)


async def _require_admin(request: Request) -> None:
    given = request.headers.get(ADMIN_HEADER, "")
    if not secrets.compare_digest(given.encode(), sandbox_of(request.app).config.admin_secret.encode()):
        raise AdminSecretRequired(f"send the sandbox admin secret in the {ADMIN_HEADER} header")


SandboxDep = Annotated[Sandbox, Depends(_sandbox)]
ADMIN = [Depends(_require_admin)]


def create_sandbox_app(config: SandboxConfig) -> FastAPI:
    """A simulated hospital EHR (FHIR R4 + SMART Backend Services) sharing no state with the gateway."""
    sandbox = Sandbox(config)
    layout = config.layout
    app = FastAPI(
        title=f"PeerLink sandbox EHR ({config.personality.value})",
        version="1",
        description="A simulated hospital EHR with synthetic data, for integrators and tests.",
    )
    app.state.sandbox = sandbox
    subscriber.mount(app, ADMIN)

    @app.exception_handler(PeerLinkError)
    async def _peerlink_error(request: Request, error: PeerLinkError) -> Response:
        return error_response(error)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, error: StarletteHTTPException) -> Response:
        code = {404: "not-found", 405: "not-supported"}.get(error.status_code, "processing")
        detail = f"nothing is served at {request.url.path[:120]}" if error.status_code == 404 else str(error.detail)
        return fhir_response(operation_outcome(code, detail), error.status_code)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, error: RequestValidationError) -> Response:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}" for e in error.errors()[:5]
        )
        return error_response(BadRequest(f"the request body is not valid: {problems}"))

    async def fhir(request: Request) -> Response:
        return await serve_fhir(sandbox_of(request.app), request)

    async def open_fhir(request: Request) -> Response:
        return await serve_fhir(sandbox_of(request.app), request, open_endpoint=True)

    methods = ["GET", "POST", "PUT", "DELETE", "PATCH"]
    for prefix, endpoint in ((layout.fhir, fhir), (layout.open_fhir, open_fhir)):
        if prefix is not None:
            app.add_api_route(prefix, endpoint, methods=methods, include_in_schema=False)
            app.add_api_route(prefix + "/{rest:path}", endpoint, methods=methods, include_in_schema=False)

    @app.get("/.well-known/smart-configuration", summary="SMART configuration (also at the FHIR base)")
    async def smart_configuration(request: Request, sandbox: SandboxDep) -> dict[str, Any]:
        return discovery(sandbox, sandbox.root(request))

    @app.get(layout.jwks, summary="The sandbox's token-signing public keys")
    async def jwks(sandbox: SandboxDep) -> dict[str, Any]:
        return sandbox.keys.public_jwks()

    @app.post(layout.token, summary="Token endpoint: client_credentials with a JWT client assertion")
    async def token(request: Request, sandbox: SandboxDep) -> JSONResponse:
        return await serve_token(sandbox, request)

    @app.post("/admin/clients", status_code=201, dependencies=ADMIN, summary="Register a client")
    async def add_client(registration: ClientRegistration, sandbox: SandboxDep) -> dict[str, Any]:
        return _client(sandbox.register_client(registration))

    @app.get("/admin/clients", dependencies=ADMIN, summary="The registered clients")
    async def list_clients(sandbox: SandboxDep) -> list[dict[str, Any]]:
        return [_client(c) for c in sandbox.registry.all()]

    @app.get("/sandbox/state", dependencies=ADMIN, summary="Counts per type, clients, knobs, URLs")
    async def state(request: Request, sandbox: SandboxDep) -> dict[str, Any]:
        return sandbox.state(sandbox.root(request))

    @app.post("/sandbox/clinic/referral", status_code=201, dependencies=ADMIN, summary="The clinic refers a patient")
    async def referral(
        sandbox: SandboxDep, body: Annotated[clinic.ReferralRequest | None, Body()] = None
    ) -> clinic.ReferralCreated:
        return sandbox.clinic_referral(body)

    @app.post("/sandbox/reset", dependencies=ADMIN, summary="Back to the seeded data (clients stay)")
    async def reset(request: Request, sandbox: SandboxDep) -> dict[str, Any]:
        sandbox.reset()
        return sandbox.state(sandbox.root(request))

    @app.get("/sandbox/knobs", dependencies=ADMIN, summary="The fault knobs")
    async def get_knobs(sandbox: SandboxDep) -> Knobs:
        return sandbox.knobs

    @app.patch("/sandbox/knobs", dependencies=ADMIN, summary="Change fault knobs while running")
    async def patch_knobs(changes: Annotated[dict[str, Any], Body()], sandbox: SandboxDep) -> Knobs:
        try:
            return sandbox.set_knobs(changes)
        except ValueError as error:
            raise BadRequest(f"not valid knobs: {error}") from None

    return app


def _client(client: RegisteredClient) -> dict[str, Any]:
    return {"client_id": client.client_id, "scopes": client.scopes, "jwks": client.jwks, "jwks_url": client.jwks_url}
