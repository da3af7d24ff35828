"""The sandbox EHR as a FastAPI app: ``create_sandbox_app(config)``.

``Sandbox`` holds one simulated hospital (store, client registry, tokens, knobs); the app's routes
are thin: SMART discovery, the token endpoint, the FHIR base(s) and the admin API. The same
``Sandbox`` object is the programmatic surface for scenarios run in-process
(``sandbox_of(app)``): register clients, file clinic referrals, read state, change knobs.
"""

from __future__ import annotations

import asyncio
import random
import secrets
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any

import orjson
import structlog
from fastapi import Body, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from service.auth.assertion import OAuthError
from service.auth.clients import RegisteredClient
from service.auth.keys import SigningKeys
from service.auth.scopes import Permissions
from service.auth.token_form import NO_STORE, error_answer, token_form
from service.domain.errors import BadRequest, MethodNotAllowed, NotFound, PeerLinkError

from . import clinic
from .auth import Caller, ClientRegistry, SandboxAuth
from .capability import capability_statement
from .config import ADMIN_HEADER, ClientRegistration, Knobs, SandboxConfig
from .fhir import FhirCall, FhirServer, Result, accepts_json, wants_pretty
from .outcome import InjectedFailure, TooManyRequests, error_response, fhir_response, operation_outcome
from .seed import (
    CLINIC_ORG_ID,
    CLINIC_PLACER_SYSTEM,
    HOSPITAL_MRN_SYSTEM,
    HOSPITAL_ORG_ID,
    PEER_PROGRAM_IDENTIFIER,
    PEER_PROGRAM_ORG_ID,
    SeedIndex,
    seed,
)
from .store import Store, instant, utc_now

OPEN_CALLER = Caller("anonymous", Permissions.of(["system/*.rs"]))
log = structlog.get_logger("peerlink.sandbox")


class AdminSecretRequired(PeerLinkError):
    status = 401
    fhir_code = "security"
    title = "Admin secret required"


def load_clients_file(path: Path) -> list[ClientRegistration]:
    """A JSON list of registrations, or ``{"clients": [...]}``."""
    try:
        document = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as error:
        raise ValueError(f"cannot read the clients file {path}: {error}") from None
    items = document.get("clients") if isinstance(document, dict) else document
    if not isinstance(items, list):
        raise ValueError(f'{path} must hold a JSON list of clients or {{"clients": [...]}}')
    return [ClientRegistration.model_validate(item) for item in items]


class Sandbox:
    """One simulated hospital EHR: its data, clients, tokens and knobs."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self._keys_tmp: tempfile.TemporaryDirectory[str] | None = None
        keys_dir = config.keys_dir
        if keys_dir is None:
            self._keys_tmp = tempfile.TemporaryDirectory(prefix="peerlink-sandbox-keys-")
            keys_dir = Path(self._keys_tmp.name)
        self.keys = SigningKeys(keys_dir)
        self.keys.ensure()
        self.registry = ClientRegistry(config)
        self.auth = SandboxAuth(config, self.keys, self.registry)
        self.knobs = config.knobs.model_copy()
        self.started = utc_now()
        self.store, self.index = self._fresh_store()
        self.fhir = FhirServer(config, lambda: self.store)
        self._dice = random.Random(f"sandbox-faults-{config.seed}")  # noqa: S311 - reproducible, not secret
        self.fhir_requests = 0
        self._burst_position = 0
        self.referrals = 0
        registrations = [*config.clients, *(load_clients_file(config.clients_file) if config.clients_file else [])]
        for registration in registrations:
            try:
                self.register_client(registration)
            except PeerLinkError as error:
                raise ValueError(f"client {registration.client_id}: {error.detail}") from None

    def _fresh_store(self) -> tuple[Store, SeedIndex]:
        store = Store(self.config.seed)
        return store, seed(store, self.config.seed, self.config.patients)

    # --- URLs ------------------------------------------------------------------------------------------------
    def root(self, request: Request) -> str:
        """The root URL clients use: the configured public URL, else the request's own."""
        return self.config.public_url or str(request.base_url).rstrip("/")

    def urls(self, root: str) -> dict[str, str]:
        layout = self.config.layout
        urls = {
            "root": root,
            "fhir_base": root + layout.fhir,
            "token_url": root + layout.token,
            "smart_configuration": root + layout.fhir + "/.well-known/smart-configuration",
        }
        if layout.open_fhir:
            urls["open_fhir_base"] = root + layout.open_fhir
        return urls

    # --- the programmatic surface ------------------------------------------------------------------------------
    def register_client(self, registration: ClientRegistration) -> RegisteredClient:
        return self.registry.add(registration)

    def clinic_referral(self, request: clinic.ReferralRequest | None = None) -> clinic.ReferralCreated:
        """The referring clinic sends a referral to the peer program: a ServiceRequest and its Task."""
        request = request or clinic.ReferralRequest()
        patient_id = self._referral_patient(request)
        self.referrals += 1
        authored = instant(utc_now())
        with self.store.atomic():
            resource, identifier = clinic.service_request(
                self.referrals, patient_id, request, authored, run=f"{self.started:%Y%m%d%H%M%S}"
            )
            order = self.store.create(resource)
            task = self.store.create(clinic.task(order.id, patient_id, authored))
        return clinic.ReferralCreated(
            service_request_id=order.id, task_id=task.id, patient_id=patient_id, identifier=identifier
        )

    def _referral_patient(self, request: clinic.ReferralRequest) -> str:
        if request.patient_id is not None:
            if not self.store.exists("Patient", request.patient_id):
                raise NotFound("no Patient with that id")
            return request.patient_id
        if request.mrn is not None:
            for version in self.store.live("Patient"):
                for ident in (version.resource or {}).get("identifier") or []:
                    if ident.get("system") == HOSPITAL_MRN_SYSTEM and ident.get("value") == request.mrn:
                        return version.id
            raise NotFound("no Patient with that MRN")
        return self.index.patient_ids[self.referrals % len(self.index.patient_ids)]

    def state(self, root: str | None = None) -> dict[str, Any]:
        config = self.config
        document: dict[str, Any] = {
            "personality": config.personality.value,
            "counts": self.store.counts(),
            "clients": [c.client_id for c in self.registry.all()],
            "fhir_requests": self.fhir_requests,
            "tokens_issued": self.auth.tokens_issued,
            "referrals": self.referrals,
            "knobs": self.knobs.model_dump(),
            "features": {
                "transaction": config.transaction,
                "conditional_create": config.conditional_create,
                "smart_discovery": config.smart_discovery,
                "unsupported_search_params": sorted(config.unsupported_search_params),
                "token_seconds": config.token_seconds,
            },
            "well_known": {
                "hospital": f"Organization/{HOSPITAL_ORG_ID}",
                "clinic": f"Organization/{CLINIC_ORG_ID}",
                "peer_program": f"Organization/{PEER_PROGRAM_ORG_ID}",
                "peer_program_identifier": "|".join(PEER_PROGRAM_IDENTIFIER),
                "mrn_system": HOSPITAL_MRN_SYSTEM,
                "clinic_placer_system": CLINIC_PLACER_SYSTEM,
            },
        }
        if root is not None:
            document["urls"] = self.urls(root)
        return document

    def reset(self) -> None:
        """Back to the seeded data (clients and their tokens stay)."""
        self.store, self.index = self._fresh_store()
        self.referrals = 0
        self.fhir_requests = 0
        self._burst_position = 0

    def set_knobs(self, changes: dict[str, Any]) -> Knobs:
        self.knobs = Knobs.model_validate({**self.knobs.model_dump(), **changes})
        self._burst_position = 0
        return self.knobs

    # --- serving -----------------------------------------------------------------------------------------------
    async def delay(self) -> None:
        if self.knobs.latency_ms:
            await asyncio.sleep(self.knobs.latency_ms / 1000)

    def inject_faults(self) -> None:
        """The burst and error-rate knobs, counted over FHIR requests."""
        knobs = self.knobs
        self.fhir_requests += 1
        if knobs.burst_every:
            position = self._burst_position % (knobs.burst_every + knobs.burst_size)
            self._burst_position += 1
            if position >= knobs.burst_every:
                raise TooManyRequests("rate limit exceeded: slow down and retry after the Retry-After delay")
        if knobs.error_rate and self._dice.random() < knobs.error_rate:
            status = 503 if self._dice.random() < 0.5 else 500
            raise InjectedFailure("the EHR failed to answer (injected fault)", status)

    async def serve_fhir(self, request: Request, *, open_endpoint: bool = False) -> Response:
        started = time.perf_counter()
        root = self.root(request)
        layout = self.config.layout
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
            await self.delay()
            self.inject_faults()
            accepts_json(call)
            caller: Caller | None = None
            if not self._is_public(call):
                caller = OPEN_CALLER if open_endpoint else await self.auth.caller(call.header("authorization"), root)
                client_id = caller.client_id
            result = self._route(call, caller, root, base, open_endpoint)
            response = fhir_response(result.document, result.status, pretty=wants_pretty(call), headers=result.headers)
        except PeerLinkError as error:
            response = error_response(error, self.knobs.retry_after)
        log.info(
            "fhir request",
            method=request.method,
            path=request.url.path,
            status=response.status_code,
            ms=round((time.perf_counter() - started) * 1000, 1),
            client=client_id,
        )
        return response

    @staticmethod
    def _is_public(call: FhirCall) -> bool:
        return call.method == "GET" and call.parts in (("metadata",), (".well-known", "smart-configuration"))

    def _route(self, call: FhirCall, caller: Caller | None, root: str, base: str, open_endpoint: bool) -> Result:
        if call.parts == ("metadata",) and call.method == "GET":
            token_url = None if open_endpoint else root + self.config.layout.token
            return Result(
                200, capability_statement(self.config, base, token_url, self.started, open_endpoint=open_endpoint)
            )
        if call.parts == (".well-known", "smart-configuration") and call.method == "GET":
            return Result(200, self.discovery(root))
        assert caller is not None
        if not call.parts:
            if call.method == "POST" and not open_endpoint:
                return self.fhir.transaction(call, caller, base)
            raise MethodNotAllowed("only POST (a transaction Bundle) is served at the FHIR base")
        return self.fhir.handle(call, caller, base, open_endpoint=open_endpoint)

    def discovery(self, root: str) -> dict[str, Any]:
        if not self.config.smart_discovery:
            raise NotFound("this EHR publishes no SMART configuration")
        return self.auth.smart_configuration(root)

    async def serve_token(self, request: Request) -> JSONResponse:
        await self.delay()
        root = self.root(request)
        try:
            body = await self.auth.token(token_form(request.headers.get("content-type"), await request.body()), root)
        except OAuthError as error:
            log.info("token refused", client=error.client_id, error=error.error, reason=error.description)
            answer, status, headers = error_answer(error)
            return JSONResponse(answer, status, headers=headers)
        log.info("token issued", scope=body.get("scope"))
        return JSONResponse(body, headers=NO_STORE)


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
        return await sandbox_of(request.app).serve_fhir(request)

    async def open_fhir(request: Request) -> Response:
        return await sandbox_of(request.app).serve_fhir(request, open_endpoint=True)

    methods = ["GET", "POST", "PUT", "DELETE", "PATCH"]
    for prefix, endpoint in ((layout.fhir, fhir), (layout.open_fhir, open_fhir)):
        if prefix is not None:
            app.add_api_route(prefix, endpoint, methods=methods, include_in_schema=False)
            app.add_api_route(prefix + "/{rest:path}", endpoint, methods=methods, include_in_schema=False)

    @app.get("/.well-known/smart-configuration", summary="SMART configuration (also at the FHIR base)")
    async def smart_configuration(request: Request, sandbox: SandboxDep) -> dict[str, Any]:
        return sandbox.discovery(sandbox.root(request))

    @app.get(layout.jwks, summary="The sandbox's token-signing public keys")
    async def jwks(sandbox: SandboxDep) -> dict[str, Any]:
        return sandbox.keys.public_jwks()

    @app.post(layout.token, summary="Token endpoint: client_credentials with a JWT client assertion")
    async def token(request: Request, sandbox: SandboxDep) -> JSONResponse:
        return await sandbox.serve_token(request)

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
