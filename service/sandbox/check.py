"""``peerlink check``: is this EHR fit for PeerLink? One row per requirement, PASS / FAIL / SKIP with a
reason, from what the EHR says about itself (SMART discovery, CapabilityStatement) and what it does
(a token exchange with our assertion, a read/search round trip and, when asked, a write that is
cleaned up afterwards).

Every request goes to the EHR's FHIR base and the token endpoint it names, through one
``httpx.AsyncClient`` on the transport given (a real network, or an app in process).
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

import httpx
from authlib.common.errors import AuthlibBaseError

from service.auth.backend_client import PrivateKey, default_alg, fetch_token

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


def _names(items: Any, key: str) -> set[str]:
    return {str(i.get(key)) for i in items or [] if isinstance(i, dict) and i.get(key)}


def _outcome_text(response: httpx.Response) -> str:
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


class _Checker:
    def __init__(self, options: CheckOptions, http: httpx.AsyncClient, transport: httpx.AsyncBaseTransport | None):
        self.options = options
        self.base = options.ehr.rstrip("/")
        self.http = http
        self.transport = transport
        self.report = CheckReport(self.base)
        self.capability: dict[str, Any] | None = None
        self.token: str | None = None
        self.patient_id: str | None = None

    def add(self, name: str, status: Status, reason: str) -> None:
        self.report.results.append(CheckResult(name, status, reason))

    async def get_json(self, url: str, **kwargs: Any) -> tuple[Any, str, httpx.Response | None]:
        """(document, problem, response): the problem is empty when the answer is a 200 with JSON."""
        try:
            response = await self.http.get(url, **kwargs)
        except httpx.HTTPError as error:
            return None, f"{type(error).__name__}: {error}", None
        if response.status_code != 200:
            return None, _outcome_text(response), response
        try:
            return response.json(), "", response
        except ValueError:
            return None, "HTTP 200 but not JSON", response

    # --- what the EHR says -------------------------------------------------------------------------------
    async def discovery(self) -> str | None:
        document, problem, _ = await self.get_json(f"{self.base}/.well-known/smart-configuration")
        if problem or not isinstance(document, dict):
            why = problem or "not a JSON object"
            self.add(DISCOVERY, Status.FAIL, f"no {self.base}/.well-known/smart-configuration ({why})")
            return None
        problems = []
        token_url = document.get("token_endpoint")
        if not isinstance(token_url, str) or not token_url:
            problems.append("no token_endpoint")
            token_url = None
        if "private_key_jwt" not in (document.get("token_endpoint_auth_methods_supported") or []):
            problems.append("token_endpoint_auth_methods_supported lacks private_key_jwt")
        algs = set(document.get("token_endpoint_auth_signing_alg_values_supported") or [])
        if not algs & set(SMART_ALGS):
            problems.append("token_endpoint_auth_signing_alg_values_supported has neither RS384 nor ES384")
        elif (alg := self.alg) not in algs:
            problems.append(f"our key signs {alg}, which is not among {', '.join(sorted(algs))}")
        if "client_credentials" not in (document.get("grant_types_supported") or []):
            problems.append("grant_types_supported lacks client_credentials")
        if problems:
            self.add(DISCOVERY, Status.FAIL, "; ".join(problems))
        else:
            self.add(
                DISCOVERY,
                Status.PASS,
                f"private_key_jwt, {'/'.join(sorted(algs & set(SMART_ALGS)))}, client_credentials",
            )
        return token_url

    @property
    def alg(self) -> str:
        return self.options.alg or default_alg(self.options.key)

    async def fetch_capability(self) -> None:
        document, problem, _ = await self.get_json(f"{self.base}/metadata", headers={"Accept": FHIR_JSON})
        if problem or not isinstance(document, dict):
            self.add(CAPABILITY, Status.FAIL, f"GET {self.base}/metadata: {problem or 'not a JSON object'}")
            return
        if document.get("resourceType") != "CapabilityStatement":
            self.add(CAPABILITY, Status.FAIL, f"{self.base}/metadata is a {document.get('resourceType')}")
            return
        version = str(document.get("fhirVersion") or "")
        self.capability = document
        if not version.startswith("4.0"):
            self.add(CAPABILITY, Status.FAIL, f"fhirVersion {version or 'missing'}; PeerLink speaks R4 (4.0.1)")
            return
        self.add(CAPABILITY, Status.PASS, f"FHIR {version}, {document.get('software', {}).get('name', 'unnamed')}")

    def capability_token_url(self) -> str | None:
        for rest in (self.capability or {}).get("rest") or []:
            for ext in ((rest.get("security") or {}).get("extension")) or []:
                if ext.get("url") == OAUTH_URIS:
                    for inner in ext.get("extension") or []:
                        if inner.get("url") == "token" and inner.get("valueUri"):
                            return str(inner["valueUri"])
        return None

    def token_endpoint(self, discovered: str | None) -> str | None:
        from_capability = self.capability_token_url()
        if discovered:
            note = ""
            if from_capability and from_capability != discovered:
                note = f" (the CapabilityStatement names another: {from_capability})"
            self.add(TOKEN_ENDPOINT, Status.PASS, f"{discovered} from the SMART configuration{note}")
            return discovered
        if from_capability:
            self.add(TOKEN_ENDPOINT, Status.PASS, f"{from_capability} from the CapabilityStatement's oauth-uris")
            return from_capability
        self.add(TOKEN_ENDPOINT, Status.FAIL, "neither the SMART configuration nor the CapabilityStatement names one")
        return None

    def server_rest(self) -> dict[str, Any]:
        for rest in (self.capability or {}).get("rest") or []:
            if isinstance(rest, dict) and rest.get("mode") == "server":
                return rest
        return {}

    def resource_entry(self, resource_type: str) -> dict[str, Any] | None:
        for entry in self.server_rest().get("resource") or []:
            if isinstance(entry, dict) and entry.get("type") == resource_type:
                return entry
        return None

    def interactions(self, resource_type: str) -> set[str]:
        return _names((self.resource_entry(resource_type) or {}).get("interaction"), "code")

    def needs(self) -> None:
        rest = self.server_rest()
        common = _names(rest.get("searchParam"), "name")
        for need in NEEDS:
            if self.capability is None:
                self.add(need.name, Status.FAIL, "no CapabilityStatement to read it from")
                continue
            entry = self.resource_entry(need.resource_type)
            if entry is None:
                self.add(need.name, Status.FAIL, f"{need.resource_type} is not in the CapabilityStatement")
                continue
            offered = self.interactions(need.resource_type)
            params = _names(entry.get("searchParam"), "name") | common
            missing = [i for i in need.all_of if i not in offered]
            if need.any_of and not set(need.any_of) & offered:
                missing.append(" or ".join(need.any_of))
            missing += [f"search parameter {p}" for p in need.search if p not in params]
            if missing:
                self.add(need.name, Status.FAIL, f"{need.resource_type} lacks {', '.join(missing)}")
            else:
                shown = sorted(set(need.all_of + need.any_of) & offered) + list(need.search)
                self.add(need.name, Status.PASS, ", ".join(shown))
        if self.capability is None:
            self.add(TRANSACTION, Status.FAIL, "no CapabilityStatement to read it from")
            self.add(CONDITIONAL, Status.FAIL, "no CapabilityStatement to read it from")
            return
        if "transaction" in _names(rest.get("interaction"), "code"):
            self.add(TRANSACTION, Status.PASS, "rest.interaction lists transaction")
        else:
            self.add(TRANSACTION, Status.FAIL, "rest.interaction does not list transaction")
        creatable = [t for t in CREATED_TYPES if "create" in self.interactions(t)]
        lacking = [t for t in creatable if not (self.resource_entry(t) or {}).get("conditionalCreate")]
        if not creatable:
            self.add(CONDITIONAL, Status.FAIL, f"none of {', '.join(CREATED_TYPES)} can be created")
        elif lacking:
            self.add(CONDITIONAL, Status.FAIL, f"conditionalCreate is not true for {', '.join(lacking)}")
        else:
            self.add(CONDITIONAL, Status.PASS, f"conditionalCreate on {', '.join(creatable)}")

    # --- what the EHR does ---------------------------------------------------------------------------------
    async def exchange(self, token_url: str | None) -> None:
        if token_url is None:
            self.add(TOKEN, Status.SKIP, "no token endpoint known")
            return
        try:
            token = await fetch_token(
                token_url,
                self.options.client_id,
                self.options.key,
                alg=self.options.alg,
                scope=self.options.scope,
                transport=self.transport,
                http_timeout=self.options.timeout,
            )
        except (AuthlibBaseError, httpx.HTTPError, ValueError) as error:
            self.add(TOKEN, Status.FAIL, f"{type(error).__name__}: {error}")
            return
        access = token.get("access_token")
        if not isinstance(access, str) or not access:
            self.add(TOKEN, Status.FAIL, "the token response has no access_token")
            return
        self.token = access
        self.add(
            TOKEN,
            Status.PASS,
            f"{self.alg} assertion; expires_in {token.get('expires_in')}, scope {token.get('scope') or '(not stated)'}",
        )

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", "Accept": FHIR_JSON}

    async def round_trip(self) -> None:
        if self.token is None:
            self.add(ROUND_TRIP, Status.SKIP, "no access token")
            return
        bundle, problem, _ = await self.get_json(f"{self.base}/Patient", params={"_count": "1"}, headers=self.auth)
        if problem or not isinstance(bundle, dict):
            self.add(ROUND_TRIP, Status.FAIL, f"Patient?_count=1: {problem or 'not a JSON object'}")
            return
        if bundle.get("resourceType") != "Bundle" or bundle.get("type") != "searchset":
            self.add(ROUND_TRIP, Status.FAIL, "Patient?_count=1 did not answer a searchset Bundle")
            return
        patients = [
            e.get("resource")
            for e in bundle.get("entry") or []
            if (e.get("resource") or {}).get("resourceType") == "Patient"
        ]
        if not patients:
            self.add(ROUND_TRIP, Status.PASS, "Patient?_count=1 answered an empty searchset (no patient to read)")
            return
        patient_id = str(patients[0].get("id"))
        patient, problem, _ = await self.get_json(f"{self.base}/Patient/{patient_id}", headers=self.auth)
        if problem or not isinstance(patient, dict):
            self.add(ROUND_TRIP, Status.FAIL, f"read Patient/{patient_id}: {problem or 'not a JSON object'}")
            return
        if patient.get("id") != patient_id:
            self.add(ROUND_TRIP, Status.FAIL, f"read Patient/{patient_id} answered another resource")
            return
        self.patient_id = patient_id
        self.add(
            ROUND_TRIP, Status.PASS, f"searched Patient (total {bundle.get('total', '?')}), read Patient/{patient_id}"
        )

    async def write(self) -> None:
        if not self.options.write_test:
            self.add(WRITE, Status.SKIP, "--write-test not given")
            self.add(CLEANUP, Status.SKIP, "--write-test not given")
            return
        if self.token is None:
            self.add(WRITE, Status.SKIP, "no access token")
            self.add(CLEANUP, Status.SKIP, "nothing written")
            return
        note: dict[str, Any] = {
            "resourceType": "DocumentReference",
            "identifier": [{"system": CHECK_IDENTIFIER_SYSTEM, "value": str(uuid.uuid4())}],
            "status": "current",
            "type": {"coding": [{"system": "http://loinc.org", "code": "11506-3", "display": "Progress note"}]},
            "description": "PeerLink conformance check: a test note, removed by the check",
            "content": [
                {
                    "attachment": {
                        "contentType": "text/plain",
                        "data": base64.b64encode(b"PeerLink conformance check").decode(),
                    }
                }
            ],
        }
        if self.patient_id:
            note["subject"] = {"reference": f"Patient/{self.patient_id}"}
        headers = {**self.auth, "Content-Type": FHIR_JSON}
        try:
            response = await self.http.post(f"{self.base}/DocumentReference", json=note, headers=headers)
        except httpx.HTTPError as error:
            self.add(WRITE, Status.FAIL, f"{type(error).__name__}: {error}")
            self.add(CLEANUP, Status.SKIP, "nothing written")
            return
        created_id = _created_id(response)
        if response.status_code != 201 or created_id is None:
            self.add(WRITE, Status.FAIL, f"POST DocumentReference: {_outcome_text(response)}")
            self.add(CLEANUP, Status.SKIP, "nothing written")
            return
        self.add(WRITE, Status.PASS, f"created DocumentReference/{created_id} (201)")
        await self.cleanup(created_id)

    async def cleanup(self, created_id: str) -> None:
        url = f"{self.base}/DocumentReference/{created_id}"
        deletable = self.capability is None or "delete" in self.interactions("DocumentReference")
        tried = ""
        if deletable:
            try:
                response = await self.http.delete(url, headers=self.auth)
            except httpx.HTTPError as error:
                response, tried = None, f"DELETE failed ({type(error).__name__}); "
            if response is not None and response.status_code in (200, 202, 204):
                self.add(CLEANUP, Status.PASS, f"deleted DocumentReference/{created_id}")
                return
            if response is not None:
                tried = f"DELETE answered {_outcome_text(response)}; "
        current, problem, read = await self.get_json(url, headers=self.auth)
        if problem or not isinstance(current, dict) or read is None:
            self.add(CLEANUP, Status.FAIL, f"{tried}cannot read DocumentReference/{created_id} back: {problem}")
            return
        current["status"] = "entered-in-error"
        headers = {**self.auth, "Content-Type": FHIR_JSON}
        if etag := read.headers.get("etag"):
            headers["If-Match"] = etag
        try:
            updated = await self.http.put(url, json=current, headers=headers)
        except httpx.HTTPError as error:
            self.add(
                CLEANUP,
                Status.FAIL,
                f"{tried}PUT failed: {type(error).__name__}; DocumentReference/{created_id} is left",
            )
            return
        if updated.status_code == 200:
            self.add(CLEANUP, Status.PASS, f"{tried}marked DocumentReference/{created_id} entered-in-error")
        else:
            self.add(
                CLEANUP,
                Status.FAIL,
                f"{tried}PUT answered {_outcome_text(updated)}: DocumentReference/{created_id} is left in the EHR",
            )


def _created_id(response: httpx.Response) -> str | None:
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


async def run_checks(options: CheckOptions, transport: httpx.AsyncBaseTransport | None = None) -> CheckReport:
    """Check one EHR; ``transport`` carries every request (None: the network)."""
    async with httpx.AsyncClient(transport=transport, timeout=options.timeout, follow_redirects=False) as http:
        checker = _Checker(options, http, transport)
        discovered = await checker.discovery()
        await checker.fetch_capability()
        token_url = checker.token_endpoint(discovered)
        checker.needs()
        await checker.exchange(token_url)
        await checker.round_trip()
        await checker.write()
    return checker.report
