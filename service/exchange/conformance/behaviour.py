"""What the EHR does: a token exchange with our assertion, a read/search round trip and, when asked,
a write that is cleaned up afterwards."""

from __future__ import annotations

import base64
import uuid
from typing import Any

import httpx
from authlib.common.errors import AuthlibBaseError

from service.auth.backend_client import fetch_token

from .probe import Probe
from .report import (
    CHECK_IDENTIFIER_SYSTEM,
    CLEANUP,
    FHIR_JSON,
    ROUND_TRIP,
    TOKEN,
    WRITE,
    Status,
    new_id,
    outcome_text,
)


class Behaviour(Probe):
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
        created_id = new_id(response)
        if response.status_code != 201 or created_id is None:
            self.add(WRITE, Status.FAIL, f"POST DocumentReference: {outcome_text(response)}")
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
                tried = f"DELETE answered {outcome_text(response)}; "
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
                f"{tried}PUT answered {outcome_text(updated)}: DocumentReference/{created_id} is left in the EHR",
            )
