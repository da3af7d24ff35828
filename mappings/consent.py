"""Consent to share records <-> Consent (FHIR R4; US Core has no Consent profile, so the overlays claim
the base Consent StructureDefinition).

The recipient organisation travels as a contained Organization referenced from provision.actor
(role PRCP), so its name, NPI and other identifier all round-trip. Data categories become
provision.class resource types (SUD counseling notes: a program-local code, so that notes' DocumentReference
never stands for them). A consent covering substance-use-disorder records (42 CFR Part 2)
carries meta.security R (restricted) + 42CFRPart2 and the regulation as policy[].uri. Revocation
makes the Consent inactive; the revocation time itself is not carried (ConsentFields has no field
for it).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from service.domain import Consent, ConsentFields, DataCategory

from . import codes
from .codes import Code
from .context import MappingContext, MappingError, check_valid
from .organization import contained as contained_organization
from .organization import organization_fields

KIND = "consent"
RECIPIENT_ID = "recipient"
# Consent.status values that describe a real decision of the participant; draft, proposed, rejected,
# entered-in-error (and codes outside the R4 value set) are refused. Whether an inbound consent is
# inactive is not part of ConsentFields: the caller reads Consent.status to revoke.
ACCEPTED_STATUSES = ("active", "inactive")


class Part2(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    policy_uri: str
    confidentiality: Code
    policy: Code


class ConsentCodes(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    scope: Code
    category: Code
    policy_rule: Code
    recipient_role: Code
    action: Code
    part2: Part2
    classes: dict[DataCategory, list[Code]]


CODES = codes.load("consent", ConsentCodes)
if missing := set(DataCategory) - set(CODES.classes):
    raise codes.CodeTableError(f"consent.toml has no provision.class for {sorted(missing)}")


def to_fhir(consent: Consent, ctx: MappingContext) -> dict[str, Any]:
    part2 = CODES.part2
    resource: dict[str, Any] = {"resourceType": "Consent", "id": ctx.id_for(KIND, consent.id)}
    if consent.substance_use:
        resource["meta"] = {"security": [part2.confidentiality.coding(), part2.policy.coding()]}
    resource |= {
        "contained": [contained_organization(consent.recipient, RECIPIENT_ID)],
        "identifier": [ctx.identifier(KIND, consent.id)],
        "status": "inactive" if consent.revoked_at is not None else "active",
        "scope": CODES.scope.concept(),
        "category": [CODES.category.concept()],
        "patient": ctx.reference("participant", consent.participant_id),
        "dateTime": consent.created_at.isoformat(),
        "performer": [ctx.reference("participant", consent.participant_id)],
        "organization": [ctx.reference("program", ctx.program.id, ctx.program.name)],
    }
    if consent.substance_use:
        resource["policy"] = [{"uri": part2.policy_uri}]
    resource["policyRule"] = CODES.policy_rule.concept()
    period = {"start": consent.period.start.isoformat()}
    if consent.period.end:
        period["end"] = consent.period.end.isoformat()
    resource["provision"] = {
        "type": "permit",
        "period": period,
        "actor": [
            {
                "role": CODES.recipient_role.concept(),
                "reference": {"reference": f"#{RECIPIENT_ID}", "display": consent.recipient.name},
            }
        ],
        "action": [CODES.action.concept()],
        "class": [
            code.coding(ctx.program.identifier_system)
            for category in consent.categories
            for code in CODES.classes[category]
        ],
    }
    return ctx.finish(resource)


# --- inbound ---------------------------------------------------------------------------------------


def _recipient(resource: dict[str, Any]) -> dict[str, Any]:
    actors = (resource.get("provision") or {}).get("actor") or []
    recipients = [
        (i, a)
        for i, a in enumerate(actors)
        if any(CODES.recipient_role.matches(c) for c in (a.get("role") or {}).get("coding") or [])
    ]
    if not recipients:
        raise MappingError("Consent.provision.actor", "no recipient (role PRCP) to disclose to")
    i, actor = recipients[0]
    reference = actor.get("reference") or {}
    target = reference.get("reference")
    if isinstance(target, str) and target.startswith("#"):
        for entry in resource.get("contained") or []:
            if entry.get("resourceType") == "Organization" and entry.get("id") == target[1:]:
                return organization_fields(entry)
        raise MappingError(f"Consent.provision.actor[{i}].reference", "points at no contained Organization")
    fields = organization_fields(reference)
    if not fields["name"]:
        raise MappingError(f"Consent.provision.actor[{i}].reference.display", "the recipient's name is required")
    return fields


def _categories(provision: dict[str, Any], program_system: str) -> list[DataCategory]:
    """Data categories in the order their first resource type appears (unknown types are ignored)."""
    found: list[DataCategory] = []
    for coding in provision.get("class") or []:
        for category, wanted in CODES.classes.items():
            if category not in found and any(code.matches(coding, program_system) for code in wanted):
                found.append(category)
    if not found:
        raise MappingError("Consent.provision.class", "names no kind of record PeerLink shares")
    return found


def _substance_use(resource: dict[str, Any]) -> bool:
    security = (resource.get("meta") or {}).get("security") or []
    policies = [p.get("uri") for p in resource.get("policy") or []]
    return any(CODES.part2.policy.matches(c) for c in security) or CODES.part2.policy_uri in policies


def from_fhir(resource: dict[str, Any], ctx: MappingContext) -> ConsentFields:
    """A Consent as consent fields: the patient must resolve to a participant of this program."""
    check_valid(resource)
    if resource.get("resourceType") != "Consent":
        raise MappingError("resourceType", "expected Consent")
    participant_id = ctx.resolve(resource.get("patient"), "Consent.patient")
    if resource.get("status") not in ACCEPTED_STATUSES:
        raise MappingError("Consent.status", f"a consent in status {resource['status']!r} permits nothing")
    provision = resource.get("provision")
    if not provision:
        raise MappingError("Consent.provision", "the permitted disclosure (period, recipient, data) is required")
    if provision.get("type") == "deny":
        raise MappingError("Consent.provision.type", "a deny provision is not a consent to share")
    period = provision.get("period") or {}
    if not period.get("start"):
        raise MappingError("Consent.provision.period.start", "the consent's start is required")
    data = {
        "participant_id": participant_id,
        "recipient": _recipient(resource),
        "categories": _categories(provision, ctx.program.identifier_system),
        "substance_use": _substance_use(resource),
        "period": {"start": str(period["start"])[:10], "end": str(period["end"])[:10] if period.get("end") else None},
    }
    try:
        return ConsentFields.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise MappingError(f"Consent ({'.'.join(map(str, first['loc']))})", first["msg"]) from None
