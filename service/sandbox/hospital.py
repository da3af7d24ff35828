"""One simulated hospital EHR: ``Sandbox`` holds its data (a seeded store), client registry, tokens
and fault knobs; it is the programmatic surface for scenarios run in process (``sandbox_of(app)``):
register clients, file clinic referrals, read state, change knobs."""

from __future__ import annotations

import asyncio
import random
import tempfile
from pathlib import Path
from typing import Any

import orjson
from fastapi import Request

from service.auth.clients import RegisteredClient
from service.auth.keys import SigningKeys
from service.domain.errors import NotFound, PeerLinkError

from . import clinic
from .auth import ClientRegistry, SandboxAuth
from .config import ClientRegistration, Knobs, SandboxConfig
from .fhir import FhirServer
from .outcome import BundlesRefused, InjectedFailure, TooManyRequests
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

    # --- faults -----------------------------------------------------------------------------------------------
    async def delay(self) -> None:
        if self.knobs.latency_ms:
            await asyncio.sleep(self.knobs.latency_ms / 1000)

    def refuse_bundle(self) -> None:
        """The refuse-bundles knob: a transaction Bundle answered with its status and an OperationOutcome."""
        if self.knobs.refuse_bundles:
            raise BundlesRefused(self.knobs.refuse_bundles)

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
