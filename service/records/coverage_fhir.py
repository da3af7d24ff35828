"""A FHIR Coverage received with a referral becomes coverage on file: the payer rule set its payor
names (else the generic one), the member id, the period, the plan. Recorded once: a coverage of the
same participant with the same payer and member id is not recorded again. A Coverage that is not
active, or carries no usable member id, stays only in the referral's clinical context."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncConnection

from service.domain.billing import DEFAULT_PAYER, PayerRegistry
from service.domain.coverage import Coverage, CoverageFields
from service.fhir.render import all_records
from service.store import kinds as k

from .coverages import create

_MEMBER_ID = re.compile(r"^[A-Za-z0-9\-]{1,80}$")
_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}")
_RELATIONSHIPS = {"self", "spouse", "child"}


def _names(payor: Mapping[str, Any], organizations: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The names and 'system|value' identifiers a Coverage.payor reference carries, lower-cased."""
    found: list[str] = []
    if isinstance(payor.get("display"), str):
        found.append(payor["display"])
    identifiers = [payor.get("identifier")]
    organization = organizations.get(str(payor.get("reference")))
    if organization is not None:
        if isinstance(organization.get("name"), str):
            found.append(organization["name"])
        identifiers += list(organization.get("identifier") or [])
    for ident in identifiers:
        if isinstance(ident, dict) and ident.get("system") and ident.get("value"):
            found.append(f"{ident['system']}|{ident['value']}")
    return [name.strip().lower() for name in found]


def payer_of(resource: Mapping[str, Any], organizations: Mapping[str, Mapping[str, Any]], payers: PayerRegistry) -> str:
    """The first rule set (by id) listing one of the Coverage's payor names, else the generic one."""
    names = {
        n for payor in resource.get("payor") or [] if isinstance(payor, dict) for n in _names(payor, organizations)
    }
    for payer_id in payers.ids:
        if names & {p.strip().lower() for p in payers.payers[payer_id].payors}:
            return payer_id
    return DEFAULT_PAYER


def _member_id(resource: Mapping[str, Any]) -> str | None:
    candidates = [resource.get("subscriberId")]
    identifiers = [i for i in resource.get("identifier") or [] if isinstance(i, dict)]
    member = [i for i in identifiers if any(c.get("code") == "MB" for c in (i.get("type") or {}).get("coding") or [])]
    candidates += [i.get("value") for i in member + identifiers]
    return next((c for c in candidates if isinstance(c, str) and _MEMBER_ID.match(c)), None)


def _day(value: Any) -> date | None:
    return date.fromisoformat(value[:10]) if isinstance(value, str) and _DATE.match(value) else None


def _class_value(resource: Mapping[str, Any], kind: str) -> str | None:
    for item in resource.get("class") or []:
        codes = {c.get("code") for c in ((item or {}).get("type") or {}).get("coding") or [] if isinstance(c, dict)}
        if kind in codes:
            value = item.get("name") or item.get("value")
            return str(value)[:200] if value else None
    return None


def fields_from_fhir(
    resource: Mapping[str, Any],
    participant_id: str,
    received_on: date,
    organizations: Mapping[str, Mapping[str, Any]],
    payers: PayerRegistry,
) -> CoverageFields | None:
    """The coverage a FHIR Coverage stands for, or None when it cannot be billed against."""
    if resource.get("status") != "active":
        return None
    member_id = _member_id(resource)
    if member_id is None:
        return None
    period = resource.get("period") or {}
    codes = [c.get("code") for c in (resource.get("relationship") or {}).get("coding") or [] if isinstance(c, dict)]
    relationship = next((c for c in codes if c in _RELATIONSHIPS), "other" if codes else "self")
    try:
        return CoverageFields.model_validate(
            {
                "participant_id": participant_id,
                "payer": payer_of(resource, organizations, payers),
                "plan": _class_value(resource, "plan"),
                "member_id": member_id,
                "group_number": _class_value(resource, "group"),
                "relationship": relationship,
                "period": {"start": _day(period.get("start")) or received_on, "end": _day(period.get("end"))},
            }
        )
    except ValidationError:  # e.g. a period ending before it starts: kept as clinical context only
        return None


async def from_referral(
    conn: AsyncConnection,
    program_id: str,
    participant_id: str,
    resources: Sequence[Mapping[str, Any]],
    organizations: Mapping[str, Mapping[str, Any]],
    payers: PayerRegistry,
    now: datetime,
) -> list[Coverage]:
    """Record the coverages a referral brought that are not on file yet; the ones recorded."""
    existing: list[Coverage] = await all_records(conn, k.COVERAGES, program_id, participant_id=participant_id)
    known = {(c.payer, c.member_id) for c in existing}
    recorded: list[Coverage] = []
    for resource in resources:
        fields = fields_from_fhir(resource, participant_id, now.date(), organizations, payers)
        if fields is None or (fields.payer, fields.member_id) in known:
            continue
        known.add((fields.payer, fields.member_id))
        recorded.append(await create(conn, program_id, fields, payers, now))
    return recorded
