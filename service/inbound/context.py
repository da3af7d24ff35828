"""The supporting resources a clinic sends in a referral transaction: which referral each belongs
to, checked once (fhir.resources R4B), and kept as the referral's clinical context.

Each kept resource gets a deterministic id (``mappings.clinical_context.served_id``), its references to
the other entries rewritten to what PeerLink serves, and is refused when it is about someone other
than the referred person. The ServiceRequest then links them: reasonReference for the reason it
names, supportingInfo for the rest.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from mappings import clinical_context as context_map
from mappings.context import MappingContext
from service.domain import Program, Referral
from service.domain.billing import load_payers
from service.records import clinical_context, coverage_fhir, operations
from service.records.clinical_context import ContextResource
from service.records.types import REFERRALS
from service.settings import get_settings

from .errors import Where, refused
from .outcomes import Outcome
from .referrals import check_valid_resource


@dataclass
class Sent:
    """A supporting entry of a transaction: where it sits, what it is, and the names it goes by."""

    index: int
    resource: dict[str, Any]
    full_url: str | None

    @property
    def root(self) -> str:
        return f"Bundle.entry[{self.index}].resource"

    @property
    def resource_type(self) -> str:
        return str(self.resource.get("resourceType"))

    @property
    def names(self) -> list[str]:
        return context_map.aliases(self.resource, self.full_url)


def references_in(node: Any) -> set[str]:
    """Every Reference.reference string inside ``node``."""
    found: set[str] = set()
    if isinstance(node, list):
        for item in node:
            found |= references_in(item)
    elif isinstance(node, dict):
        if isinstance(node.get("reference"), str):
            found.add(node["reference"])
        for value in node.values():
            found |= references_in(value)
    return found


def mapping_view(sent: Sequence[Sent]) -> dict[str, tuple[str, dict[str, Any]]]:
    """The supporting entries as the referral mapping looks them up: name -> (element, resource)."""
    return {name: (s.root, s.resource) for s in sent for name in s.names}


def assign(
    requests: Sequence[tuple[int, dict[str, Any], dict[str, Any] | None]], sent: Sequence[Sent]
) -> dict[int, list[Sent]]:
    """ServiceRequest entry index -> the supporting entries it carries. With one ServiceRequest, all
    of them; with several, those its ServiceRequest or Task names (directly or through another
    supporting entry). An entry no referral claims is refused, naming it."""
    if not sent:
        return {}
    if not requests:
        raise refused(sent[0].root, "is kept only with a referral: send it with its ServiceRequest")
    if len(requests) == 1:
        return {requests[0][0]: list(sent)}
    by_name = {name: s for s in sent for name in s.names}
    owned: dict[int, list[Sent]] = {}
    owner: dict[int, int] = {}
    for index, service_request, task in requests:
        todo = list(references_in(service_request) | references_in(task or {}))
        while todo:
            found = by_name.get(todo.pop())
            if found is None or found.index in owner:
                continue
            owner[found.index] = index
            owned.setdefault(index, []).append(found)
            todo += references_in(found.resource)
    for s in sent:
        if s.index not in owner:
            raise refused(s.root, "no ServiceRequest of this transaction names it; reference it from one")
    return owned


async def referred_patient(conn: AsyncConnection, program: Program, referral_id: str) -> str:
    """The id of the Patient PeerLink serves for the person a referral is for."""
    referral: Referral = await REFERRALS.repository.get(conn, program.id, referral_id)
    return MappingContext(program).id_for("participant", referral.participant_id)


async def keep_context(
    conn: AsyncConnection,
    program: Program,
    referral_id: str,
    patient_id: str,
    service_request: Mapping[str, Any],
    sent: Sequence[Sent],
    served: Mapping[str, str],
) -> list[Outcome]:
    """Check and keep the supporting entries of one referral; their outcomes in the order given.
    ``served``: reference as sent -> what PeerLink serves (Type/id) for the other entries."""
    ctx = MappingContext(program)
    served = dict(served)
    ids: dict[int, str] = {}
    for s in sent:
        key = context_map.clinic_key(s.resource, s.full_url)
        ids[s.index] = context_map.served_id(ctx.system, referral_id, s.resource_type, key)
        for name in s.names:
            served[name] = f"{s.resource_type}/{ids[s.index]}"
    patient = f"Patient/{patient_id}"
    reasons = {r.get("reference") for r in service_request.get("reasonReference") or [] if isinstance(r, dict)}
    items: list[ContextResource] = []
    for s in sent:
        if s.resource_type not in context_map.KEPT_TYPES:
            kept = ", ".join(context_map.KEPT_TYPES)
            raise refused(s.root, f"PeerLink does not keep {s.resource_type[:40]} with a referral; it keeps {kept}")
        check_valid_resource(s.resource, s.resource_type, Where({s.resource_type: s.root}))
        for element, reference in context_map.patient_references(s.resource):
            if served.get(reference, reference) != patient:
                raise refused(f"{s.root}.{element}", "is not the person the ServiceRequest is for")
        role = clinical_context.REASON if reasons & set(s.names) else clinical_context.SUPPORTING
        body = context_map.kept(s.resource, ids[s.index], served)
        key = context_map.clinic_key(s.resource, s.full_url)
        items.append(ContextResource(s.resource_type, key, ids[s.index], role, body))
    now = operations.utcnow()
    created = await clinical_context.keep(conn, program.id, referral_id, items, now)
    await _record_coverages(conn, program, referral_id, sent, now)
    return [Outcome(i.resource_type, i.resource_id, new) for i, new in zip(items, created, strict=True)]


async def _record_coverages(
    conn: AsyncConnection, program: Program, referral_id: str, sent: Sequence[Sent], now: datetime
) -> None:
    """A Coverage sent with the referral also becomes coverage on file (service.records.coverage_fhir)."""
    coverages = [s.resource for s in sent if s.resource_type == "Coverage"]
    if not coverages:
        return
    referral: Referral = await REFERRALS.repository.get(conn, program.id, referral_id)
    organizations = {name: s.resource for s in sent if s.resource_type == "Organization" for name in s.names}
    payers = load_payers(get_settings().payers_dir)
    await coverage_fhir.from_referral(conn, program.id, referral.participant_id, coverages, organizations, payers, now)
