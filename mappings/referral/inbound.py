"""ServiceRequest (+ optional Task) -> referral (inbound): what a clinic's order says, read from its
requester (contained or referenced PractitionerRole, Practitioner, Organization) or its Task."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from service.domain import ReferralFields, ReferralStatus
from service.domain.common import IdentifierType

from ..context import MappingContext, MappingError, check_valid
from ..patient import CODES as PATIENT_CODES
from ..primitives import date_time
from .model import CODES, ELEMENTS, KIND, NPI_SYSTEM, TASK_KIND, InboundReferral


def _validated(resource: dict[str, Any], resource_type: str) -> None:
    if not isinstance(resource, Mapping):
        raise MappingError(resource_type, "expected a JSON object")
    check_valid(resource)
    if resource.get("resourceType") != resource_type:
        raise MappingError("resourceType", f"expected {resource_type}")


def status_from_task(task: dict[str, Any]) -> ReferralStatus:
    """The referral status a clinic's Task update asks for (the clinic may only create or cancel)."""
    status = task.get("status")
    if not isinstance(status, str) or not status:
        raise MappingError("Task.status", "required")
    for allowed, referral_status in CODES.inbound_task_status.items():
        if status == allowed:
            return referral_status
    allowed_codes = ", ".join(CODES.inbound_task_status)
    raise MappingError("Task.status", f"{status!r} is set by the peer program; a clinic may set {allowed_codes}")


def _status_from_request(service_request: dict[str, Any]) -> ReferralStatus:
    status = service_request.get("status")
    for allowed, referral_status in CODES.inbound_service_request_status.items():
        if status == allowed:
            return referral_status
    raise MappingError("ServiceRequest.status", f"{status!r} cannot start or change a referral")


Supporting = Mapping[str, tuple[str, dict[str, Any]]]
"""Resources sent beside the ServiceRequest (a transaction's entries): reference as written -> (the
element it was sent as, the resource)."""
NOTHING: Supporting = {}


def _contained_by_id(resource: dict[str, Any]) -> dict[str, tuple[str, dict[str, Any]]]:
    found: dict[str, tuple[str, dict[str, Any]]] = {}
    for i, item in enumerate(resource.get("contained") or []):
        if isinstance(item, dict) and item.get("id"):
            found[str(item["id"])] = (f"ServiceRequest.contained[{i}]", item)
    return found


def _target(
    ref: Mapping[str, Any] | None,
    contained: Mapping[str, tuple[str, dict[str, Any]]],
    where: str,
    supporting: Supporting = NOTHING,
) -> tuple[str, dict[str, Any]] | None:
    """The contained or supporting resource a reference points at (with its element path), else None."""
    target = (ref or {}).get("reference")
    if isinstance(target, str) and target.startswith("#"):
        if target[1:] not in contained:
            raise MappingError(where, f"{target} names no contained resource")
        return contained[target[1:]]
    if isinstance(target, str) and target in supporting:
        return supporting[target]
    return None


def _referenced_type(ref: Mapping[str, Any]) -> str | None:
    if isinstance(ref.get("type"), str):
        return str(ref["type"])
    target = ref.get("reference")
    if isinstance(target, str) and "/" in target:
        return target.rstrip("/").split("/")[-2]
    return None


def _npi_of(identifiers: Sequence[Mapping[str, Any]]) -> str | None:
    for ident in identifiers:
        if ident.get("system") == NPI_SYSTEM and ident.get("value"):
            return str(ident["value"])
    return None


def _identifier_type(ident: Mapping[str, Any]) -> IdentifierType:
    for coding in (ident.get("type") or {}).get("coding") or []:
        for kind, code in PATIENT_CODES.identifier_types.items():
            if code.matches(coding):
                return kind
    return IdentifierType.OTHER


def _other_identifier(identifiers: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    for ident in identifiers:
        if ident.get("system") and ident.get("value") and ident.get("system") != NPI_SYSTEM:
            return {
                "type": _identifier_type(ident).value,
                "system": ident["system"],
                "value": ident["value"],
                "assigner": (ident.get("assigner") or {}).get("display"),
            }
    return None


def _clinician_from_resource(practitioner: Mapping[str, Any], where: str) -> dict[str, Any]:
    names = practitioner.get("name") or []
    name = next((n for n in names if n.get("use") == "official"), None) or next(iter(names), None)
    if not name or not name.get("family"):
        raise MappingError(f"{where}.name", "the referring clinician needs a family name")
    return {
        "name": {
            "family": name["family"],
            "given": name.get("given") or [],
            "prefix": name.get("prefix") or [],
            "suffix": name.get("suffix") or [],
        },
        "npi": _npi_of(practitioner.get("identifier") or []),
    }


def _clinician_from_reference(ref: Mapping[str, Any], where: str) -> dict[str, Any]:
    words = str(ref.get("display") or "").split()
    if not words:
        raise MappingError(f"{where}.display", "the referring clinician's name is required")
    ident = ref.get("identifier") or {}
    return {"name": {"family": words[-1], "given": words[:-1]}, "npi": _npi_of([ident])}


def _organization_from_resource(org: Mapping[str, Any], where: str) -> dict[str, Any]:
    if not org.get("name"):
        raise MappingError(f"{where}.name", "the referring organization needs a name")
    identifiers = org.get("identifier") or []
    return {"name": org["name"], "npi": _npi_of(identifiers), "identifier": _other_identifier(identifiers)}


def _organization_from_reference(ref: Mapping[str, Any], where: str) -> dict[str, Any]:
    if not ref.get("display"):
        raise MappingError(f"{where}.display", "the referring organization's name is required")
    identifiers = [ref["identifier"]] if ref.get("identifier") else []
    return {"name": ref["display"], "npi": _npi_of(identifiers), "identifier": _other_identifier(identifiers)}


def _organization(
    ref: Mapping[str, Any] | None,
    contained: Mapping[str, tuple[str, dict[str, Any]]],
    where: str,
    supporting: Supporting = NOTHING,
) -> dict[str, Any] | None:
    if not ref:
        return None
    found = _target(ref, contained, where, supporting)
    if found is not None:
        path, resource = found
        if resource.get("resourceType") != "Organization":
            raise MappingError(where, "must point at an Organization")
        return _organization_from_resource(resource, path)
    if _referenced_type(ref) not in (None, "Organization"):
        return None
    return _organization_from_reference(ref, where) if ref.get("display") else None


def _clinician_reference(
    service_request: dict[str, Any], task: dict[str, Any] | None, supporting: Supporting
) -> tuple[str, Mapping[str, Any]]:
    """(element, reference) of the referring clinician: ServiceRequest.requester, else a Task.requester
    that names a Practitioner or PractitionerRole."""
    requester = service_request.get("requester")
    if requester:
        return "ServiceRequest.requester", requester
    task_requester = (task or {}).get("requester") or {}
    found = _target(task_requester, {}, "Task.requester", supporting)
    kind = found[1].get("resourceType") if found else _referenced_type(task_requester)
    if kind in ("Practitioner", "PractitionerRole"):
        return "Task.requester", task_requester
    raise MappingError("ServiceRequest.requester", "the referring clinician is required")


def _requester(
    service_request: dict[str, Any],
    task: dict[str, Any] | None,
    supporting: Supporting = NOTHING,
    default_organization: Mapping[str, Any] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(referring clinician, referring organization) from the requester, contained or supporting
    resources or Task; the organization last from ``default_organization`` (the sending client's)."""
    where, requester = _clinician_reference(service_request, task, supporting)
    contained = _contained_by_id(service_request)
    organization: dict[str, Any] | None = None
    found = _target(requester, contained, where, supporting)
    if found is not None:
        path, resource = found
        kind = resource.get("resourceType")
        if kind == "PractitionerRole":
            practitioner_ref = resource.get("practitioner")
            if not practitioner_ref:
                raise MappingError(f"{path}.practitioner", "the referring clinician is required")
            inner = _target(practitioner_ref, contained, f"{path}.practitioner", supporting)
            clinician = (
                _clinician_from_resource(inner[1], inner[0])
                if inner is not None
                else _clinician_from_reference(practitioner_ref, f"{path}.practitioner")
            )
            organization = _organization(resource.get("organization"), contained, f"{path}.organization", supporting)
        elif kind == "Practitioner":
            clinician = _clinician_from_resource(resource, path)
        else:
            raise MappingError(where, "must name the referring clinician (Practitioner or PractitionerRole)")
    elif _referenced_type(requester) in (None, "Practitioner", "PractitionerRole"):
        clinician = _clinician_from_reference(requester, where)
    else:
        raise MappingError(where, "must name the referring clinician (Practitioner or PractitionerRole)")
    if organization is None and task is not None:
        organization = _organization(task.get("requester"), {}, "Task.requester", supporting)
    if organization is None:
        orgs = [(p, r) for p, r in contained.values() if r.get("resourceType") == "Organization"]
        sent = {p: r for p, r in supporting.values() if r.get("resourceType") == "Organization"}
        if not orgs and len(sent) == 1:
            orgs = list(sent.items())
        if orgs:
            path, org = orgs[0]
            organization = _organization_from_resource(org, path)
    if organization is None and default_organization is not None:
        organization = dict(default_organization)
    if organization is None:
        raise MappingError(
            where,
            "the referring organization is unknown (give PractitionerRole.organization, a contained "
            "Organization or Task.requester)",
        )
    return clinician, organization


def _concept_reason(concept: Mapping[str, Any], element: str) -> dict[str, Any] | None:
    codings = [c for c in concept.get("coding") or [] if isinstance(c, dict) and c.get("code")]
    text = concept.get("text") or next((c.get("display") for c in codings if c.get("display")), None)
    if not text:
        return None
    first = codings[0] if codings else {}
    return {"text": text, "code": first.get("code"), "system": first.get("system")}


def _reason_of(service_request: dict[str, Any], supporting: Supporting = NOTHING) -> dict[str, Any]:
    """The reason from reasonCode, else from the Condition (or Observation) a reasonReference names."""
    reasons = service_request.get("reasonCode") or []
    if reasons:
        reason = _concept_reason(reasons[0], "ServiceRequest.reasonCode[0]")
        if reason is None:
            raise MappingError("ServiceRequest.reasonCode[0].text", "a reason for the referral is required")
        return reason
    references = service_request.get("reasonReference") or []
    if not references:
        raise MappingError("ServiceRequest.reasonCode", "a reason for the referral is required")
    where = "ServiceRequest.reasonReference[0]"
    found = _target(references[0], _contained_by_id(service_request), where, supporting)
    if found is not None:
        path, resource = found
        reason = _concept_reason(resource.get("code") or {}, f"{path}.code")
        if reason is None:
            raise MappingError(f"{path}.code", "the reason for the referral needs a code or text")
        return reason
    if references[0].get("display"):
        return {"text": references[0]["display"], "code": None, "system": None}
    raise MappingError(
        where, "names no Condition sent with the referral (send it in the transaction, or give a display)"
    )


def clinic_identifiers(resource: Mapping[str, Any], ctx: MappingContext, kind: str = KIND) -> list[dict[str, Any]]:
    """The clinic's own identifiers of its order or Task (ours, the program's identifier of ``kind``,
    left out), once each in the order sent."""
    own_system = ctx.identifier(kind, "")["system"]
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for ident in resource.get("identifier") or []:
        if ident.get("system") and ident.get("value") and ident.get("system") != own_system:
            found.setdefault(
                (ident["system"], ident["value"]),
                {
                    "type": _identifier_type(ident).value,
                    "system": ident["system"],
                    "value": ident["value"],
                    "assigner": (ident.get("assigner") or {}).get("display"),
                },
            )
    return list(found.values())


def _order_identifiers(service_request: dict[str, Any], ctx: MappingContext) -> list[dict[str, Any]]:
    """The order's identifiers; the same one twice is the clinic's mistake and refused as before."""
    own_system = ctx.identifier(KIND, "")["system"]
    return [
        {
            "type": _identifier_type(ident).value,
            "system": ident["system"],
            "value": ident["value"],
            "assigner": (ident.get("assigner") or {}).get("display"),
        }
        for ident in service_request.get("identifier") or []
        if ident.get("system") and ident.get("value") and ident.get("system") != own_system
    ]


def _check_focus(service_request: dict[str, Any], task: dict[str, Any]) -> None:
    focus = (task.get("focus") or {}).get("reference")
    own_id = service_request.get("id")
    if isinstance(focus, str) and own_id and not focus.endswith(f"ServiceRequest/{own_id}"):
        raise MappingError("Task.focus", "does not point at the ServiceRequest given with it")


def from_fhir(
    service_request: dict[str, Any],
    task: dict[str, Any] | None,
    ctx: MappingContext,
    *,
    supporting: Supporting = NOTHING,
    default_organization: Mapping[str, Any] | None = None,
) -> InboundReferral:
    """A clinic's ServiceRequest (and its Task, when sent) as a referral; unknown elements are ignored.
    ``supporting``: the resources sent beside it, by the references that name them (the requester,
    its organization, the reason's Condition); ``default_organization``: the referring organization
    when none is given (the sending client's registered one)."""
    _validated(service_request, "ServiceRequest")
    if task is not None:
        _validated(task, "Task")
        _check_focus(service_request, task)
    participant_id = ctx.resolve(service_request.get("subject"), "ServiceRequest.subject")
    authored_element = "ServiceRequest.authoredOn"
    if not service_request.get("authoredOn") and task is not None and task.get("authoredOn"):
        authored_element = "Task.authoredOn"
    authored = service_request.get("authoredOn") or (task or {}).get("authoredOn")
    if not authored:
        raise MappingError("ServiceRequest.authoredOn", "required: when the clinic made the referral")
    requested_at = date_time(authored, authored_element)
    clinician, organization = _requester(service_request, task, supporting, default_organization)
    data = {
        "participant_id": participant_id,
        "referring_organization": organization,
        "referring_clinician": clinician,
        "reason": _reason_of(service_request, supporting),
        "priority": service_request.get("priority") or "routine",
        "requested_at": requested_at,
        # kept when our instant would not give back what was sent (a date, a month, 'Z', a fraction)
        "authored_on": None if requested_at.isoformat() == authored else authored,
        "identifiers": _order_identifiers(service_request, ctx),
        "task_identifiers": clinic_identifiers(task, ctx, TASK_KIND) if task is not None else [],
    }
    try:
        fields = ReferralFields.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = tuple(map(str, first["loc"]))
        element = ELEMENTS.get(loc[0], "ServiceRequest") if loc else "ServiceRequest"
        raise MappingError(element, f"{'.'.join(loc)}: {first['msg']}") from None
    if task is not None:
        status = status_from_task(task)
        reason = (task.get("statusReason") or {}).get("text")
    else:
        status, reason = _status_from_request(service_request), None
    return InboundReferral(fields=fields, status=status, status_reason=reason)
