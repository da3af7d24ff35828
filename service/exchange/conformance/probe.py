"""One run of the check against one EHR: its results so far, what it learned (the CapabilityStatement,
a token, a patient), and the reading of the CapabilityStatement both halves of the check use."""

from __future__ import annotations

from typing import Any

import httpx

from service.auth.backend_client import default_alg

from .report import FHIR_JSON, OAUTH_URIS, CheckOptions, CheckReport, CheckResult, Status, names, outcome_text


class Probe:
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
            return None, outcome_text(response), response
        try:
            return response.json(), "", response
        except ValueError:
            return None, "HTTP 200 but not JSON", response

    @property
    def alg(self) -> str:
        return self.options.alg or default_alg(self.options.key)

    def capability_token_url(self) -> str | None:
        for rest in (self.capability or {}).get("rest") or []:
            for ext in ((rest.get("security") or {}).get("extension")) or []:
                if ext.get("url") == OAUTH_URIS:
                    for inner in ext.get("extension") or []:
                        if inner.get("url") == "token" and inner.get("valueUri"):
                            return str(inner["valueUri"])
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
        return names((self.resource_entry(resource_type) or {}).get("interaction"), "code")

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", "Accept": FHIR_JSON}
