"""The conformance check's vocabulary: what PeerLink needs of an EHR (``NEEDS``), the names of the
checks, their results and the report (a table, or JSON); and how an EHR's answer is told in a row."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

import httpx

from service.auth.backend_client import PrivateKey

FHIR_JSON = "application/fhir+json"
OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
SMART_ALGS = ("RS384", "ES384")
CHECK_IDENTIFIER_SYSTEM = "urn:peerlink:conformance-check"


class Status(StrEnum):
    PASS = "PASS"  # noqa: S105 - a check result, not a password
    FAIL = "FAIL"
    SKIP = "SKIP"


@dataclass(frozen=True)
class CheckResult:
    name: str
    status: Status
    reason: str


@dataclass
class CheckReport:
    ehr: str
    results: list[CheckResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Every check that ran passed (skipped ones do not count)."""
        return all(r.status is not Status.FAIL for r in self.results)

    def status_of(self, name: str) -> Status:
        return next(r.status for r in self.results if r.name == name)

    def table(self) -> str:
        width = max([len("CHECK"), *(len(r.name) for r in self.results)])
        lines = [f"{'CHECK':<{width}}  RESULT  REASON"]
        lines += [f"{r.name:<{width}}  {r.status.value:<6}  {r.reason}" for r in self.results]
        passed = sum(r.status is Status.PASS for r in self.results)
        failed = sum(r.status is Status.FAIL for r in self.results)
        skipped = sum(r.status is Status.SKIP for r in self.results)
        lines.append(f"\n{self.ehr}: {passed} passed, {failed} failed, {skipped} skipped")
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return {"ehr": self.ehr, "ok": self.ok, "results": [asdict(r) for r in self.results]}


@dataclass(frozen=True)
class Need:
    """What PeerLink needs of one resource type, as a CapabilityStatement states it."""

    name: str
    resource_type: str
    all_of: tuple[str, ...] = ()
    any_of: tuple[str, ...] = ()
    search: tuple[str, ...] = ()


NEEDS = (
    Need("Patient: read, search by identifier", "Patient", all_of=("read", "search-type"), search=("identifier",)),
    Need("Encounter: create or update", "Encounter", any_of=("create", "update")),
    Need("DocumentReference: create", "DocumentReference", all_of=("create",)),
    Need("CareTeam: update", "CareTeam", all_of=("update",)),
    Need("ServiceRequest: read, search", "ServiceRequest", all_of=("read", "search-type")),
    Need(
        "Task: search by owner and _lastUpdated, update",
        "Task",
        all_of=("search-type", "update"),
        search=("owner", "_lastUpdated"),
    ),
)
CREATED_TYPES = ("Encounter", "DocumentReference")
"""The types PeerLink creates at an EHR: a resend must not duplicate them (conditional create)."""

DISCOVERY = "SMART configuration"
TOKEN_ENDPOINT = "token endpoint"  # noqa: S105 - a check's name
TOKEN = "token exchange"  # noqa: S105 - a check's name
CAPABILITY = "CapabilityStatement"
TRANSACTION = "transaction Bundles"
CONDITIONAL = "conditional create"
ROUND_TRIP = "read/search round trip"
WRITE = "write test: create DocumentReference"
CLEANUP = "write test: clean up"


@dataclass(frozen=True)
class CheckOptions:
    ehr: str
    """The EHR's FHIR base URL."""
    client_id: str
    key: PrivateKey
    alg: str | None = None
    scope: str | None = None
    write_test: bool = False
    timeout: float = 10.0


def names(items: Any, key: str) -> set[str]:
    return {str(i.get(key)) for i in items or [] if isinstance(i, dict) and i.get(key)}


def outcome_text(response: httpx.Response) -> str:
    try:
        document = response.json()
        issues = document.get("issue") or []
        text = "; ".join(str(i.get("diagnostics") or i.get("code")) for i in issues if isinstance(i, dict))
        if text:
            return f"HTTP {response.status_code}: {text}"
        if document.get("error"):
            return f"HTTP {response.status_code}: {document['error']} {document.get('error_description') or ''}"
    except (ValueError, AttributeError):
        pass
    return f"HTTP {response.status_code}"


def new_id(response: httpx.Response) -> str | None:
    try:
        document = response.json()
        if isinstance(document, dict) and isinstance(document.get("id"), str):
            return str(document["id"])
    except ValueError:
        pass
    parts = [p for p in response.headers.get("location", "").split("/") if p]
    if "_history" in parts:
        parts = parts[: parts.index("_history")]
    return parts[-1] if len(parts) >= 2 else None
