"""End to end over loopback: a clinic's SMART backend client (registered with `peerlink clients add`,
its assertion signed with PyJWT) refers a participant of the seeded program, then sends a completed
PHQ-9 as a QuestionnaireResponse with fhirpy; the gateway process scores it and the assessment appears
in the participant's outcomes on the peer API. A response for someone the clinic did not refer is
refused and leaves nothing."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fhirpy import AsyncFHIRClient
from fhirpy.base.exceptions import OperationOutcome

from tests.auth_support import fetch_token, rsa_key
from tests.e2e.gateway import PEERLINK, Gateway, running_gateway
from tests.inbound.support import phq9_response

pytestmark = pytest.mark.e2e
CLINIC_ID = "bhc-ehr"
CLINIC_ORG = "urn:oid:2.16.840.1.113883.19.5|BHC-7"
CLINIC_SCOPES = "system/ServiceRequest.c system/QuestionnaireResponse.c system/Patient.rs"
PLACER = "urn:oid:2.16.840.1.113883.19.5.99"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    workdir = tmp_path_factory.mktemp("inbound-assessment")
    with running_gateway(workdir) as running:
        jwks = workdir / "clinic-jwks.json"
        jwks.write_text(json.dumps(rsa_key("clinic-e2e").jwks))
        command = [PEERLINK, "clients", "add", CLINIC_ID, "--scopes", CLINIC_SCOPES, "--org", CLINIC_ORG]
        subprocess.run([*command, "--jwks", str(jwks)], env=running.env, check=True, capture_output=True, timeout=60)
        yield running


def participant_of(patient: dict[str, Any]) -> str:
    own = [i["value"] for i in patient["identifier"] if i.get("system", "").endswith("/participant")]
    assert len(own) == 1
    return str(own[0])


async def test_a_clinics_questionnaire_response_appears_in_the_outcomes(gateway: Gateway):
    program = gateway.headers()  # the seeded program's own client (`peerlink token`)
    async with httpx.AsyncClient(base_url=gateway.base, timeout=30) as http:
        token = await fetch_token(http, rsa_key("clinic-e2e"), CLINIC_ID, f"{gateway.base}/auth/token")
        patients = (await http.get("/fhir/Patient", params={"_count": 2}, headers=program)).json()["entry"]
        referred, other = (entry["resource"] for entry in patients)
        participant = participant_of(referred)
        before = (await http.get(f"/peer/v1/participants/{participant}/outcomes", headers=program)).json()

        clinic = AsyncFHIRClient(f"{gateway.base}/fhir", authorization=f"Bearer {token}")
        referral = clinic.resource(
            "ServiceRequest",
            identifier=[{"system": PLACER, "value": "ORD-QR-1"}],
            status="active",
            intent="order",
            subject={"reference": f"Patient/{referred['id']}"},
            authoredOn="2026-01-03T09:15:00-08:00",
            requester={"display": "Better Health Clinic"},
            reasonCode=[{"text": "Low mood after discharge"}],
        )
        await referral.save()

        # someone the clinic did not refer: refused, as if the Patient did not exist
        with pytest.raises(OperationOutcome) as refused:
            await clinic.resource("QuestionnaireResponse", **_sent(other["id"], "QR-E2E-0")).save()
        assert "QuestionnaireResponse.subject" in str(refused.value)

        response = clinic.resource("QuestionnaireResponse", **_sent(referred["id"], "QR-E2E-1"))
        await response.save()
        assert response["id"] and response["status"] == "completed"
        assert response["subject"]["reference"] == f"Patient/{referred['id']}"

        after = (await http.get(f"/peer/v1/participants/{participant}/outcomes", headers=program)).json()
        points = {p["assessment_id"]: p for s in after["series"] if s["instrument"] == "phq-9" for p in s["points"]}
        known = {p["assessment_id"] for s in before["series"] for p in s["points"]}
        new = [p for key, p in points.items() if key not in known]
        assert len(new) == 1
        assert (new[0]["total"], new[0]["band"], new[0]["flags"]) == (10, "moderate", ["self-harm-thoughts"])
        assessment = (await http.get(f"/peer/v1/assessments/{new[0]['assessment_id']}", headers=program)).json()
        assert (assessment["participant_id"], assessment["administered_by"]) == (participant, "participant")
        assert response["identifier"]["value"] == assessment["id"]

        # the clinic's resend is the same response, not a second assessment
        resent = await http.post(
            "/fhir/QuestionnaireResponse",
            content=json.dumps({"resourceType": "QuestionnaireResponse", **_sent(referred["id"], "QR-E2E-1")}),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/fhir+json"},
        )
        assert resent.status_code == 200 and resent.json()["id"] == response["id"]
        listed = await http.get("/peer/v1/assessments", params={"participant_id": participant}, headers=program)
        assert len(listed.json()["items"]) == len(known) + 1


def _sent(patient: str, identifier: str) -> dict[str, Any]:
    body = phq9_response(subject={"reference": f"Patient/{patient}"}, author={"reference": f"Patient/{patient}"})
    body["identifier"] = {"system": "urn:oid:2.16.840.1.113883.19.5.42", "value": identifier}
    return {key: value for key, value in body.items() if key != "resourceType"}
