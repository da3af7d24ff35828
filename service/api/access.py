"""Who is asking, and may they: the bearer token of every /fhir and /peer request, checked once per
request; the scope each route needs; the data boundary the queries carry.

Every route of the two routers has an entry in :data:`RULES` and asks for :func:`current_access`
(through ``ProgramDep``; a test checks both); a route without a rule is refused, never silently allowed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from service.auth.runtime import CLIENT_CACHE_SECONDS, Security
from service.auth.scopes import ADMIN_SCOPE, Interaction, Permissions, grantable
from service.domain.errors import Forbidden, Unauthorized
from service.domain.referral import ReferralAction
from service.records.types import ALL

ALL_PERMISSIONS = Permissions({"*": "cruds"}, admin=True)


@dataclass(frozen=True)
class Access:
    client_id: str | None
    """None when the deployment runs without authentication (PEERLINK_AUTH_REQUIRED=false)."""
    program_id: str | None
    """The client's program; None without authentication (the PeerLink-Program header decides)."""
    organization: str | None
    """The organisation the client acts for (its data boundary); None: the program itself."""
    permissions: Permissions

    def require(self, resource_type: str, interaction: Interaction) -> None:
        if not self.permissions.allows(resource_type, interaction):
            raise Forbidden(
                f"the token's scopes do not allow {interaction.name.lower()} of {resource_type} "
                f"(needs system/{resource_type}.{interaction.value})"
            )

    def require_admin(self) -> None:
        if not self.permissions.admin:
            raise Forbidden(f"this route needs the {ADMIN_SCOPE} scope")

    def may_read(self, resource_type: str) -> bool:
        return self.permissions.allows(resource_type, Interaction.READ)


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("send an access token: Authorization: Bearer <token> (POST /auth/token issues one)")
    return token.strip()


def known_access(security: Security, token: str) -> Access | None:
    """The Access a bearer token was found to carry, while that finding holds (until the token
    expires or its client's registration is due a re-read, CLIENT_CACHE_SECONDS); else None."""
    cached = security.access_cache.get(token)
    if cached is not None and cached[0] > time.monotonic():
        known: Access = cached[1]
        return known
    return None


async def _authenticate(request: Request) -> Access:
    security: Security = request.app.state.security
    token = _bearer(request)
    known = known_access(security, token)
    if known is not None:
        return known
    now = time.monotonic()
    verified = await security.verifier.verify(token)
    request.state.client_id = verified.client_id
    client = await security.client(verified.client_id)
    if client is None:
        raise Unauthorized("the token's client is not registered here")
    if client.disabled:
        raise Unauthorized("the token's client is disabled")
    if verified.issuer != security.settings.base_url and client.organization is None:
        raise Unauthorized("an external issuer's token cannot act for the program's own clients")
    # the registration is the ceiling: the intersection of the token's scopes and the registered ones
    permissions = Permissions.of(grantable(" ".join(verified.scopes), client.scopes) if verified.scopes else [])
    access = Access(client.client_id, client.program_id, client.organization, permissions)
    # remembered until the token expires or the registration is due a re-read, whichever comes first
    until = min(now + CLIENT_CACHE_SECONDS, now + verified.expires_at - time.time())
    security.remember_access(token, until, access)
    return access


async def current_access(request: Request) -> Access:
    """The request's client, checked against the rule of the route it reached (one dependency for both)."""
    cached: Access | None = getattr(request.state, "access", None)
    if cached is not None:
        return cached
    if not request.app.state.settings.auth_required:
        access = Access(None, None, None, ALL_PERMISSIONS)
    else:
        access = await _authenticate(request)
    request.state.access = access
    _check_route(request, access)
    return access


AccessDep = Annotated[Access, Depends(current_access)]


@dataclass(frozen=True)
class Rule:
    interaction: Interaction | None
    """None: any valid token (the handler checks what the body asks for)."""
    resource_type: str | None = None
    """None: the route's {resource_type} path parameter."""
    peer: bool = False
    """A peer API route: the program's own clients only."""
    admin: bool = False


_FHIR_RULES = {
    "fhir_read": Rule(Interaction.READ),
    "fhir_vread": Rule(Interaction.READ),
    "fhir_history": Rule(Interaction.READ),
    "fhir_history_type": Rule(Interaction.READ),
    "fhir_search": Rule(Interaction.SEARCH),
    "fhir_search_post": Rule(Interaction.SEARCH),
    "fhir_create_service_request": Rule(Interaction.CREATE, "ServiceRequest"),
    "fhir_create_task": Rule(Interaction.CREATE, "Task"),
    "fhir_create_questionnaire_response": Rule(Interaction.CREATE, "QuestionnaireResponse"),
    "fhir_update_task": Rule(Interaction.UPDATE, "Task"),
    "fhir_patch_task": Rule(Interaction.UPDATE, "Task"),
    "fhir_transaction": Rule(None),
    "fhir_transaction_base": Rule(None),
    "fhir_audit_search": Rule(None, "AuditEvent", admin=True),
    # bulk export: any valid token; the export holds only the types its scopes let it read
    **{
        name: Rule(None)
        for name in (
            "fhir_export",
            "fhir_export_post",
            "fhir_patient_export",
            "fhir_patient_export_post",
            "fhir_group_export",
            "fhir_group_export_post",
            "fhir_export_status",
            "fhir_export_cancel",
            "fhir_export_file",
        )
    },
    "fhir_group_read": Rule(Interaction.READ, "Group"),
    "fhir_group_search": Rule(Interaction.SEARCH, "Group"),
    # subscriptions: any valid token; the handler allows only topics whose types the scopes may read,
    # and a client sees its own subscriptions only
    **{
        name: Rule(None)
        for name in (
            "fhir_subscription_create",
            "fhir_subscription_read",
            "fhir_subscription_search",
            "fhir_subscription_update",
            "fhir_subscription_delete",
            "fhir_subscription_status",
            "fhir_subscription_events",
        )
    },
}
FHIR_TYPE_OF_KIND = {
    "specialist": "Practitioner",
    "participant": "Patient",
    "care_team_member": "CareTeam",
    "encounter": "Encounter",
    "note": "DocumentReference",
    "referral": "ServiceRequest",
    "consent": "Consent",
    "goal": "Goal",
}
_PEER_RULES: dict[str, Rule] = {
    f"{verb}_{rtype.stored.name}": Rule(interaction, FHIR_TYPE_OF_KIND[rtype.stored.name], peer=True)
    for rtype in ALL
    for verb, interaction in (
        ("create", Interaction.CREATE),
        ("read", Interaction.READ),
        ("update", Interaction.UPDATE),
        ("list", Interaction.SEARCH),
    )
}
_PEER_RULES |= {
    f"{action}_referral": Rule(Interaction.UPDATE, "ServiceRequest", peer=True) for action in ReferralAction
}
_PEER_RULES |= {
    "sign_note": Rule(Interaction.UPDATE, "DocumentReference", peer=True),
    "amend_note": Rule(Interaction.CREATE, "DocumentReference", peer=True),
    "retract_note": Rule(Interaction.UPDATE, "DocumentReference", peer=True),
    "revoke_consent": Rule(Interaction.UPDATE, "Consent", peer=True),
    "read_program": Rule(None, peer=True),
    "participant_disclosures": Rule(None, peer=True, admin=True),
    "list_instruments": Rule(None, peer=True),
    "create_assessment": Rule(Interaction.CREATE, "QuestionnaireResponse", peer=True),
    "amend_assessment": Rule(Interaction.CREATE, "QuestionnaireResponse", peer=True),
    "read_assessment": Rule(Interaction.READ, "QuestionnaireResponse", peer=True),
    "list_assessment": Rule(Interaction.SEARCH, "QuestionnaireResponse", peer=True),
    "list_due_assessments": Rule(Interaction.SEARCH, "QuestionnaireResponse", peer=True),
    "participant_outcomes": Rule(Interaction.READ, "QuestionnaireResponse", peer=True),
    "program_outcome_report": Rule(Interaction.SEARCH, "QuestionnaireResponse", peer=True),
    "referral_matches": Rule(Interaction.READ, "ServiceRequest", peer=True),
    "assign_referral": Rule(Interaction.UPDATE, "ServiceRequest", peer=True),
    "matching_plan": Rule(Interaction.SEARCH, "ServiceRequest", peer=True),
    "program_matching_report": Rule(Interaction.SEARCH, "ServiceRequest", peer=True),
}
_PEER_RULES |= {  # billing: coverages, the payer rule sets, claim readiness
    "create_coverage": Rule(Interaction.CREATE, "Coverage", peer=True),
    "read_coverage": Rule(Interaction.READ, "Coverage", peer=True),
    "update_coverage": Rule(Interaction.UPDATE, "Coverage", peer=True),
    "list_coverage": Rule(Interaction.SEARCH, "Coverage", peer=True),
    "list_payer_rules": Rule(None, peer=True),
    "billing_readiness": Rule(Interaction.SEARCH, "Claim", peer=True),
    "read_billing_provider": Rule(None, peer=True),
    "set_billing_provider": Rule(None, peer=True, admin=True),
    "export_claims": Rule(Interaction.CREATE, "Claim", peer=True),
    "list_claims": Rule(Interaction.SEARCH, "Claim", peer=True),
    "ingest_remittance": Rule(Interaction.CREATE, "ClaimResponse", peer=True),
}
RULES: dict[str, Rule] = {**_FHIR_RULES, **_PEER_RULES}


GUARDED_PREFIXES = ("/fhir", "/peer/")
"""Routes under these prefixes must have a rule; other routes that ask for the client (the admin API)
check what they need themselves."""


def _check_route(request: Request, access: Access) -> None:
    route = request.scope.get("route")
    rule = RULES.get(getattr(route, "operation_id", None) or "")
    if rule is None:
        if request.url.path.startswith(GUARDED_PREFIXES):
            raise Forbidden("this route has no access rule")
        return
    if access.client_id is None:
        return
    if rule.peer and access.organization is not None:
        raise Forbidden("the peer API serves the program's own clients; an organisation's client uses /fhir")
    if rule.admin:
        access.require_admin()
    if rule.interaction is not None:
        resource_type = rule.resource_type or str(request.path_params.get("resource_type", ""))
        access.require(resource_type, rule.interaction)


async def require_admin(access: AccessDep) -> Access:
    access.require_admin()
    return access


AdminDep = Annotated[Access, Depends(require_admin)]
