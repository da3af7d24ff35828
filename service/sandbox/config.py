"""What a sandbox EHR is: its personality, feature switches and fault knobs, as one typed config.

Everything the sandbox serves (routes, CapabilityStatement, SMART discovery, refusals) is derived from
this object, so what it says about itself is what it does.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

RESOURCE_TYPES = (
    "Patient",
    "Practitioner",
    "Organization",
    "Encounter",
    "DocumentReference",
    "CareTeam",
    "ServiceRequest",
    "Task",
    "QuestionnaireResponse",  # outcome assessments: the answers ...
    "Observation",  # ... and the scores derived from them (US Core screening assessment)
    "Questionnaire",  # the instrument a QuestionnaireResponse answers, when a client files it
)
ADMIN_HEADER = "X-Sandbox-Admin"
"""The header carrying the sandbox admin secret (admin API, /sandbox/...)."""
ADMIN_SECRET_FILE = "admin-secret"  # noqa: S105 - a file name
"""Where ``peerlink sandbox`` keeps the admin secret, in its keys folder."""
DEFAULT_TENANT = "5f6a8b4e-2c1d-5e3f-9a7b-1c2d3e4f5a6b"
"""The oracle personality's tenant id when none is given (a made-up id, not a real tenant's)."""

BUNDLE_REFUSALS = frozenset({0, 400, 403, 405, 422, 501})
"""Statuses the ``refuse_bundles`` knob answers a transaction Bundle with (0: it is processed)."""
READ_INTERACTIONS = frozenset({"read", "vread", "search-type"})
WRITE_INTERACTIONS = frozenset({"create", "update"})


class Personality(StrEnum):
    GENERIC = "generic"
    EPIC = "epic"
    ORACLE = "oracle"


@dataclass(frozen=True)
class Layout:
    """Where a personality serves things (paths below the server root; ``{tenant}`` filled in)."""

    fhir: str
    token: str
    open_fhir: str | None = None
    jwks: str = "/auth/jwks"


def layout(personality: Personality, tenant: str) -> Layout:
    if personality is Personality.EPIC:
        return Layout("/api/FHIR/R4", "/oauth2/token")
    if personality is Personality.ORACLE:
        return Layout(
            f"/r4/{tenant}", f"/tenants/{tenant}/protocols/oauth2/profiles/smart-v1/token", f"/open/r4/{tenant}"
        )
    return Layout("/fhir", "/auth/token")


def interactions(personality: Personality) -> dict[str, frozenset[str]]:
    """The FHIR interactions each resource type offers under a personality."""
    every = READ_INTERACTIONS | WRITE_INTERACTIONS
    if personality is Personality.GENERIC:
        return {t: every | {"delete"} for t in RESOURCE_TYPES}
    if personality is Personality.ORACLE:
        return dict.fromkeys(RESOURCE_TYPES, every)
    # epic-like: directory and clinical types are read-only; notes can be filed; referrals worked on
    table = dict.fromkeys(RESOURCE_TYPES, READ_INTERACTIONS)
    table["DocumentReference"] = every
    table["ServiceRequest"] = every
    table["Task"] = every
    return table


class Knobs(BaseModel):
    """Faults the sandbox injects into FHIR requests; changeable while it runs (``PATCH /sandbox/knobs``)."""

    model_config = ConfigDict(validate_assignment=True, extra="forbid")

    latency_ms: int = Field(default=0, ge=0, le=60_000, description="Added to every FHIR and token request.")
    error_rate: float = Field(default=0.0, ge=0.0, le=1.0, description="Share of FHIR requests answered 500/503.")
    burst_every: int = Field(default=0, ge=0, description="After this many FHIR requests, a 429 burst (0: never).")
    burst_size: int = Field(default=1, ge=1, description="How many requests in a row a burst answers 429.")
    retry_after: int = Field(default=1, ge=0, le=3600, description="Retry-After seconds on 429 and 503.")
    refuse_bundles: int = Field(
        default=0,
        description="Answer every transaction Bundle with this status (403, 405, 501, or 400/422 'not supported') "
        "and an OperationOutcome, while the CapabilityStatement still lists transaction (0: off).",
    )

    @field_validator("refuse_bundles")
    @classmethod
    def _a_refusal_status(cls, value: int) -> int:
        if value not in BUNDLE_REFUSALS:
            raise ValueError(f"refuse_bundles: one of {', '.join(str(s) for s in sorted(BUNDLE_REFUSALS))}")
        return value


class ClientRegistration(BaseModel):
    """A SMART backend-services client of the sandbox (``POST /admin/clients`` or ``--clients FILE``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    client_id: str = Field(min_length=1, max_length=200)
    scopes: str = Field(min_length=1)
    jwks: dict[str, Any] | None = None
    jwks_url: str | None = None

    @model_validator(mode="after")
    def _one_key_source(self) -> ClientRegistration:
        if (self.jwks is None) == (self.jwks_url is None):
            raise ValueError("give the client's keys as jwks or as jwks_url (one of the two)")
        return self


class SandboxConfig(BaseModel):
    """One simulated EHR. Defaults give a conforming generic EHR with no faults."""

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid", frozen=True)

    personality: Personality = Personality.GENERIC
    tenant: str = Field(default=DEFAULT_TENANT, pattern=r"^[A-Za-z0-9-]{1,64}$")
    public_url: str | None = Field(
        default=None,
        description="The sandbox's root URL as clients see it. Unset: taken from each request (Host header).",
    )
    admin_secret: str = Field(default_factory=lambda: secrets.token_urlsafe(24), min_length=8)
    keys_dir: Path | None = Field(
        default=None, description="Folder of the token-signing keys; unset: a fresh temporary folder."
    )
    seed: int = Field(default=8, description="Random seed of the synthetic data and of the fault dice.")
    patients: int = Field(default=50, ge=12, le=10_000)
    token_seconds: int = Field(default=300, ge=1, le=3600, description="Lifetime of issued access tokens.")
    knobs: Knobs = Field(default_factory=Knobs)
    # feature switches (all on: a conforming EHR); off makes a deficient EHR for the checker
    transaction: bool = True
    conditional_create: bool = True
    smart_discovery: bool = True
    unsupported_search_params: frozenset[str] = Field(
        default=frozenset(),
        description='Search parameters left out: "Type:param" for one type, "param" for every type.',
    )
    clients: tuple[ClientRegistration, ...] = ()
    clients_file: Path | None = Field(default=None, description="JSON list of client registrations loaded at start.")
    jwks_transport: httpx.AsyncBaseTransport | None = Field(
        default=None, description="Carries fetches of clients' JWKS URLs (tests put a fake here)."
    )
    http_timeout: float = Field(default=5.0, gt=0)

    @field_validator("public_url")
    @classmethod
    def _no_trailing_slash(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("public_url must be an http(s) URL")
        return value.rstrip("/") if value else value

    @property
    def layout(self) -> Layout:
        return layout(self.personality, self.tenant)

    @property
    def assertion_algs(self) -> tuple[str, ...]:
        """Algorithms a client assertion may be signed with."""
        return ("RS384",) if self.personality is Personality.EPIC else ("RS384", "ES384")

    @property
    def opaque_tokens(self) -> bool:
        """epic-like: access tokens are random strings the sandbox remembers, not JWTs."""
        return self.personality is Personality.EPIC

    @property
    def jwks_url_required(self) -> bool:
        """epic-like: clients register a JWK Set URL; inline JWKS are refused."""
        return self.personality is Personality.EPIC

    def interactions(self) -> dict[str, frozenset[str]]:
        return interactions(self.personality)

    def search_param_supported(self, resource_type: str, name: str) -> bool:
        return (
            name not in self.unsupported_search_params
            and f"{resource_type}:{name}" not in self.unsupported_search_params
        )

    def deficient(self) -> SandboxConfig:
        """The same sandbox without transactions, conditional create, SMART discovery and Task's polling
        parameters: what a checker must flag."""
        return self.model_copy(
            update={
                "transaction": False,
                "conditional_create": False,
                "smart_discovery": False,
                "unsupported_search_params": self.unsupported_search_params | {"Task:owner", "Task:_lastUpdated"},
            }
        )
