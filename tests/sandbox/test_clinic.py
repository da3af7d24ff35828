"""The admin surface scenarios use: state, the clinic's referral (Gravity closed-loop shape, readable
by the gateway's own inbound mapping), reset."""

from __future__ import annotations

import re

import pytest

from mappings import referral as referral_mapping
from mappings.context import MappingContext, MappingError
from mappings.models import validate
from service.domain import ReferralStatus
from service.sandbox import ReferralRequest
from service.sandbox import seed as sandbox_seed
from tests.mappings.support import context
from tests.sandbox.support import ADMIN_SECRET, ROOT


async def test_state_needs_the_admin_secret(ehr):
    assert (await ehr.http.get("/sandbox/state")).status_code == 401
    state = await ehr.admin.state()
    assert state["counts"]["Patient"] == 50 and state["counts"]["Task"] == 0
    assert state["personality"] == "generic"
    assert state["urls"] == {
        "root": ROOT,
        "fhir_base": f"{ROOT}/fhir",
        "token_url": f"{ROOT}/auth/token",
        "smart_configuration": f"{ROOT}/fhir/.well-known/smart-configuration",
    }
    assert state["well_known"]["peer_program"] == "Organization/peer-program"
    assert state["well_known"]["peer_program_identifier"] == "|".join(sandbox_seed.PEER_PROGRAM_IDENTIFIER)


async def test_clinic_referral_over_http(ehr):
    created = await ehr.admin.clinic_referral()
    state = await ehr.admin.state()
    assert state["counts"]["ServiceRequest"] == 1 and state["counts"]["Task"] == 1
    assert state["referrals"] == 1
    order = (await ehr.get(f"/ServiceRequest/{created.service_request_id}")).json()
    task = (await ehr.get(f"/Task/{created.task_id}")).json()
    validate(order)
    validate(task)
    assert order["status"] == "active" and order["intent"] == "order"
    assert order["subject"] == {"reference": f"Patient/{created.patient_id}"}
    assert order["requester"]["reference"] == f"Practitioner/{sandbox_seed.CLINIC_PRACTITIONER_ID}"
    assert order["performer"][0]["reference"] == "Organization/peer-program"
    assert order["identifier"][0]["system"] == sandbox_seed.CLINIC_PLACER_SYSTEM
    assert order["identifier"][0]["value"] == created.identifier["value"]
    assert re.fullmatch(r"RCC-REF-\d{14}-0001", created.identifier["value"])  # unique across restarts
    assert order["code"]["coding"][0]["code"] == "461481000124109"
    assert task["status"] == "requested" and task["intent"] == "order"
    assert task["code"]["coding"][0]["code"] == "fulfill"
    assert task["focus"] == {"reference": f"ServiceRequest/{created.service_request_id}"}
    assert task["for"] == {"reference": f"Patient/{created.patient_id}"}
    assert task["requester"]["reference"] == "Organization/riverside-clinic"
    assert task["owner"]["reference"] == "Organization/peer-program"
    polled = (await ehr.get("/Task", params={"owner": "Organization/peer-program", "status": "requested"})).json()
    assert [e["resource"]["id"] for e in polled["entry"]] == [created.task_id]
    by_identifier = await ehr.get(
        "/ServiceRequest", params={"identifier": f"{sandbox_seed.CLINIC_PLACER_SYSTEM}|{created.identifier['value']}"}
    )
    assert by_identifier.json()["total"] == 1


async def test_referral_choices(ehr):
    by_mrn = ehr.sandbox.clinic_referral(ReferralRequest(mrn="SBX100007", priority="urgent", requester="organization"))
    patient = (await ehr.get(f"/Patient/{by_mrn.patient_id}")).json()
    assert patient["identifier"][0]["value"] == "SBX100007"
    order = (await ehr.get(f"/ServiceRequest/{by_mrn.service_request_id}")).json()
    assert order["priority"] == "urgent"
    assert order["requester"]["reference"] == "Organization/riverside-clinic"
    chosen = ehr.sandbox.index.patient_ids[33]
    assert ehr.sandbox.clinic_referral(ReferralRequest(patient_id=chosen)).patient_id == chosen
    headers = {"X-Sandbox-Admin": ADMIN_SECRET}
    unknown = await ehr.http.post("/sandbox/clinic/referral", json={"mrn": "SBX000000"}, headers=headers)
    assert unknown.status_code == 404
    invalid = await ehr.http.post("/sandbox/clinic/referral", json={"priority": "whenever"}, headers=headers)
    assert invalid.status_code == 400
    defaults = [ehr.sandbox.clinic_referral().patient_id for _ in range(2)]
    assert defaults[0] != defaults[1]


@pytest.mark.parametrize("requester", ["practitioner", "organization"])
async def test_the_gateway_mapping_reads_the_clinic_referral(ehr, requester):
    """What the gateway's inbound mapping makes of the referral, both ServiceRequest.requester forms."""
    created = ehr.sandbox.clinic_referral(ReferralRequest(mrn="SBX100002", requester=requester))
    order = (await ehr.get(f"/ServiceRequest/{created.service_request_id}")).json()
    task = (await ehr.get(f"/Task/{created.task_id}")).json()
    base = context()
    ctx = MappingContext(base.program, base.overlay, {f"Patient/{created.patient_id}": "participant-3"})
    if requester == "organization":  # the gateway wants a clinician as ServiceRequest.requester
        with pytest.raises(MappingError, match="clinician"):
            referral_mapping.from_fhir(order, task, ctx)
        return
    inbound = referral_mapping.from_fhir(order, task, ctx)
    assert inbound.status is ReferralStatus.REQUESTED
    assert inbound.fields.participant_id == "participant-3"
    assert inbound.fields.referring_organization.name == sandbox_seed.CLINIC_NAME
    assert inbound.fields.referring_clinician.name.family == "Referwell"
    assert re.fullmatch(r"RCC-REF-\d{14}-0001", inbound.fields.identifiers[0].value)


async def test_reset_goes_back_to_the_seed(ehr):
    ehr.sandbox.clinic_referral()
    await ehr.token()
    state = await ehr.admin.reset()
    assert state["counts"]["Task"] == 0 and state["referrals"] == 0
    assert (await ehr.get("/Patient", params={"_summary": "count"})).json()["total"] == 50  # the token still works
    again = ehr.sandbox.clinic_referral()
    assert again.identifier["value"].endswith("-0001")
