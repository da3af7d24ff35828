"""Referral -> ServiceRequest + Task (outbound): the clinic's order with a contained PractitionerRole,
Practitioner and Organization, and PeerLink's progress on it as an SDOHCC Task (see mappings.referral)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from service.domain import EncounterStatus, PeerEncounter, ReferralStatus
from service.domain.common import Organization
from service.domain.referral import Referral, ReferralTransition

from ..assessment import TOTAL, observation_id
from ..context import MappingContext
from ..patient import CODES as PATIENT_CODES
from ..patient import identifier_to_fhir
from .model import CODES, INTENT, KIND, NPI_SYSTEM, TASK_KIND, ContextLink, OutcomeLink


def _local(ref_id: str) -> str:
    return f"#{ref_id}"


def _npi(value: str) -> dict[str, str]:
    return {"system": NPI_SYSTEM, "value": value}


def _org_identifiers(org: Organization) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if org.npi:
        out.append(_npi(org.npi))
    if ident := org.identifier:
        entry: dict[str, Any] = {}
        if code := PATIENT_CODES.identifier_types.get(ident.type):
            entry["type"] = code.concept()
        entry["system"] = ident.system
        entry["value"] = ident.value
        if ident.assigner:
            entry["assigner"] = {"display": ident.assigner}
        out.append(entry)
    return out


def _contained(referral: Referral) -> list[dict[str, Any]]:
    clinician, org, ids = referral.referring_clinician, referral.referring_organization, CODES.contained
    name: dict[str, Any] = {"family": clinician.name.family}
    for part in ("given", "prefix", "suffix"):
        if values := getattr(clinician.name, part):
            name[part] = list(values)
    practitioner: dict[str, Any] = {"resourceType": "Practitioner", "id": ids.practitioner}
    if clinician.npi:
        practitioner["identifier"] = [_npi(clinician.npi)]
    practitioner["name"] = [name]
    organization: dict[str, Any] = {"resourceType": "Organization", "id": ids.organization}
    if identifiers := _org_identifiers(org):
        organization["identifier"] = identifiers
    organization["active"] = True
    organization["name"] = org.name
    role = {
        "resourceType": "PractitionerRole",
        "id": ids.role,
        "practitioner": {"reference": _local(ids.practitioner), "display": clinician.name.text},
        "organization": {"reference": _local(ids.organization), "display": org.name},
    }
    return [role, practitioner, organization]


def authored_on(referral: Referral) -> str:
    """When the clinic made the referral, as it sent it (its precision kept), else our instant."""
    return referral.authored_on or referral.requested_at.isoformat()


def _reason(referral: Referral) -> dict[str, Any]:
    reason = referral.reason
    concept: dict[str, Any] = {}
    if reason.code:
        coding = {"system": reason.system, "code": reason.code}
        concept["coding"] = [{k: v for k, v in coding.items() if v}]
    concept["text"] = reason.text
    return concept


def _service_request(referral: Referral, ctx: MappingContext, links: Sequence[ContextLink]) -> dict[str, Any]:
    ids = CODES.contained
    request = {
        "resourceType": "ServiceRequest",
        "id": ctx.id_for(KIND, referral.id),
        "contained": _contained(referral),
        "identifier": [ctx.identifier(KIND, referral.id), *map(identifier_to_fhir, referral.identifiers)],
        "status": CODES.service_request_status[referral.status],
        "intent": INTENT,
        "category": [CODES.category.social_service.concept(), CODES.category.social_connection.concept()],
        "code": CODES.service.concept(),
        "priority": referral.priority.value,
        "subject": ctx.reference("participant", referral.participant_id),
        "authoredOn": authored_on(referral),
        "requester": {
            "reference": _local(ids.role),
            "type": "PractitionerRole",
            "display": referral.referring_clinician.name.text,
        },
        "performer": [ctx.reference("program", ctx.program.id, ctx.program.name)],
        "reasonCode": [_reason(referral)],
    }
    if reasons := [{"reference": f"{x.resource_type}/{x.resource_id}"} for x in links if x.reason]:
        request["reasonReference"] = reasons
    if supporting := [{"reference": f"{x.resource_type}/{x.resource_id}"} for x in links if not x.reason]:
        request["supportingInfo"] = supporting
    return request


def _clinic(org: Organization) -> dict[str, Any]:
    ref: dict[str, Any] = {"type": "Organization"}
    identifiers = _org_identifiers(org)
    if identifiers:
        ref["identifier"] = identifiers[0]
    ref["display"] = org.name
    return ref


def _last_step(referral: Referral) -> ReferralTransition | None:
    return referral.transitions[-1] if referral.transitions else None


def _outcome(link: OutcomeLink, ctx: MappingContext) -> dict[str, Any]:
    code = CODES.output.baseline_outcome if link.baseline else CODES.output.latest_outcome
    reference = f"Observation/{observation_id(ctx, link.assessment_id, TOTAL)}"
    return {
        "type": code.concept(ctx.system),
        "valueReference": {"reference": reference, "display": f"{link.instrument_title}: {code.display.lower()}"},
    }


def _outputs(
    referral: Referral, ctx: MappingContext, encounters: Sequence[PeerEncounter], outcomes: Sequence[OutcomeLink]
) -> list[dict[str, Any]]:
    delivered = sorted(
        (e for e in encounters if e.status is EncounterStatus.FINISHED and e.participant_id == referral.participant_id),
        key=lambda e: (e.start, e.id),
    )
    outputs: list[dict[str, Any]] = [
        {
            "type": CODES.output.encounter.concept(ctx.system),
            "valueReference": ctx.reference("encounter", e.id),
        }
        for e in delivered
    ]
    outputs += [_outcome(link, ctx) for link in outcomes]
    if referral.outcome_summary:
        outputs.append(
            {"type": CODES.output.outcome_summary.concept(ctx.system), "valueString": referral.outcome_summary}
        )
    return outputs


def _task(
    referral: Referral, ctx: MappingContext, encounters: Sequence[PeerEncounter], outcomes: Sequence[OutcomeLink]
) -> dict[str, Any]:
    step = _last_step(referral)
    task: dict[str, Any] = {
        "resourceType": "Task",
        "id": ctx.id_for(TASK_KIND, referral.id),
        "identifier": [ctx.identifier(TASK_KIND, referral.id), *map(identifier_to_fhir, referral.task_identifiers)],
        "status": CODES.task_status[referral.status],
    }
    if referral.status in (ReferralStatus.REJECTED, ReferralStatus.CANCELLED) and step and step.reason:
        task["statusReason"] = {"text": step.reason}
    task.update(
        {
            "businessStatus": CODES.business_status[referral.status].concept(),
            "intent": INTENT,
            "priority": referral.priority.value,
            "code": CODES.task_code.concept(),
            "focus": ctx.reference(KIND, referral.id),
            "for": ctx.reference("participant", referral.participant_id),
            "authoredOn": authored_on(referral),
            "lastModified": (step.at if step else referral.requested_at).isoformat(),
            "requester": _clinic(referral.referring_organization),
            "owner": (
                ctx.reference("specialist-role", referral.assigned_specialist_id)
                if referral.assigned_specialist_id
                else ctx.reference("program", ctx.program.id, ctx.program.name)
            ),
        }
    )
    if referral.status is ReferralStatus.COMPLETED and (outputs := _outputs(referral, ctx, encounters, outcomes)):
        task["output"] = outputs
    return task


def to_fhir(
    referral: Referral,
    ctx: MappingContext,
    encounters: Sequence[PeerEncounter] = (),
    context: Sequence[ContextLink] = (),
    outcomes: Sequence[OutcomeLink] = (),
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(ServiceRequest, Task); ``encounters`` are the sessions that fulfilled a completed referral,
    ``context`` the clinical context the clinic sent with it (linked from the ServiceRequest),
    ``outcomes`` the baseline and latest outcome assessments a completed referral's Task lists."""
    task = _task(referral, ctx, encounters, outcomes)
    return ctx.finish(_service_request(referral, ctx, context)), ctx.finish(task)
