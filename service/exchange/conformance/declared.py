"""What the EHR says about itself: its SMART configuration, its CapabilityStatement, the token
endpoint they name, and whether the CapabilityStatement offers what PeerLink needs."""

from __future__ import annotations

from .probe import Probe
from .report import (
    CAPABILITY,
    CONDITIONAL,
    CREATED_TYPES,
    DISCOVERY,
    FHIR_JSON,
    NEEDS,
    SMART_ALGS,
    TOKEN_ENDPOINT,
    TRANSACTION,
    Status,
    names,
)


class Declared(Probe):
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

    def needs(self) -> None:
        rest = self.server_rest()
        common = names(rest.get("searchParam"), "name")
        for need in NEEDS:
            if self.capability is None:
                self.add(need.name, Status.FAIL, "no CapabilityStatement to read it from")
                continue
            entry = self.resource_entry(need.resource_type)
            if entry is None:
                self.add(need.name, Status.FAIL, f"{need.resource_type} is not in the CapabilityStatement")
                continue
            offered = self.interactions(need.resource_type)
            params = names(entry.get("searchParam"), "name") | common
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
        if "transaction" in names(rest.get("interaction"), "code"):
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
