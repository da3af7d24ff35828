"""The referring clinic's side: a referral to the peer program in the Gravity SDOH closed-loop pattern
(SDOHCC ServiceRequest + TaskForReferralManagement), as a clinic's EHR user would file it."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .seed import (
    CLINIC_NAME,
    CLINIC_ORG_ID,
    CLINIC_PLACER_SYSTEM,
    CLINIC_PRACTITIONER_ID,
    PEER_PROGRAM_NAME,
    PEER_PROGRAM_ORG_ID,
    V2_0203,
)

SNOMED = "http://snomed.info/sct"
SDOHCC_SERVICE_REQUEST = "http://hl7.org/fhir/us/sdoh-clinicalcare/StructureDefinition/SDOHCC-ServiceRequest"
SDOHCC_TASK = "http://hl7.org/fhir/us/sdoh-clinicalcare/StructureDefinition/SDOHCC-TaskForReferralManagement"
SDOHCC_CATEGORY = "http://hl7.org/fhir/us/sdoh-clinicalcare/CodeSystem/SDOHCC-CodeSystemTemporaryCodes"
TASK_CODE = "http://hl7.org/fhir/CodeSystem/task-code"


class ReferralRequest(BaseModel):
    """What ``POST /sandbox/clinic/referral`` accepts (everything optional)."""

    model_config = ConfigDict(extra="forbid")

    patient_id: str | None = Field(default=None, description="A Patient id; default: the next seeded patient.")
    mrn: str | None = Field(default=None, description="Or the patient's hospital MRN (SBX100000 ...).")
    reason: str = Field(default="Peer support for engagement in outpatient mental-health care", max_length=500)
    priority: Literal["routine", "urgent", "asap", "stat"] = "routine"
    requester: Literal["practitioner", "organization"] = Field(
        default="practitioner",
        description="ServiceRequest.requester: the clinic's referring clinician (as SDOHCC examples do), or "
        "the clinic Organization itself.",
    )


class ReferralCreated(BaseModel):
    service_request_id: str
    task_id: str
    patient_id: str
    identifier: dict[str, str]
    """The clinic's placer number of the order (system, value)."""


def service_request(
    number: int, patient_id: str, request: ReferralRequest, authored_on: str, run: str = "0"
) -> tuple[dict[str, Any], dict[str, str]]:
    # the run (when the sandbox started) keeps order numbers unique across restarts, as a clinic's are
    identifier = {"system": CLINIC_PLACER_SYSTEM, "value": f"RCC-REF-{run}-{number:04d}"}
    if request.requester == "practitioner":
        requester = {"reference": f"Practitioner/{CLINIC_PRACTITIONER_ID}", "display": "Robin Referwell"}
    else:
        requester = {"reference": f"Organization/{CLINIC_ORG_ID}", "display": CLINIC_NAME}
    resource = {
        "resourceType": "ServiceRequest",
        "meta": {"profile": [SDOHCC_SERVICE_REQUEST]},
        "identifier": [
            {"type": {"coding": [{"system": V2_0203, "code": "PLAC", "display": "Placer Identifier"}]}, **identifier}
        ],
        "status": "active",
        "intent": "order",
        "category": [
            {"coding": [{"system": SNOMED, "code": "410606002", "display": "Social service procedure"}]},
            {"coding": [{"system": SDOHCC_CATEGORY, "code": "social-connection", "display": "Social Connection"}]},
        ],
        "priority": request.priority,
        "code": {
            "coding": [{"system": SNOMED, "code": "461481000124109", "display": "Referral to peer support (procedure)"}]
        },
        "subject": {"reference": f"Patient/{patient_id}"},
        "authoredOn": authored_on,
        "requester": requester,
        "performer": [{"reference": f"Organization/{PEER_PROGRAM_ORG_ID}", "display": PEER_PROGRAM_NAME}],
        "reasonCode": [{"text": request.reason}],
    }
    return resource, identifier


def task(service_request_id: str, patient_id: str, authored_on: str) -> dict[str, Any]:
    return {
        "resourceType": "Task",
        "meta": {"profile": [SDOHCC_TASK]},
        "status": "requested",
        "intent": "order",
        "priority": "routine",
        "code": {"coding": [{"system": TASK_CODE, "code": "fulfill", "display": "Fulfill the focal request"}]},
        "focus": {"reference": f"ServiceRequest/{service_request_id}"},
        "for": {"reference": f"Patient/{patient_id}"},
        "authoredOn": authored_on,
        "lastModified": authored_on,
        "requester": {"reference": f"Organization/{CLINIC_ORG_ID}", "display": CLINIC_NAME},
        "owner": {"reference": f"Organization/{PEER_PROGRAM_ORG_ID}", "display": PEER_PROGRAM_NAME},
    }
