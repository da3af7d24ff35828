"""A FHIR Group per partner organisation: each EHR connection and each registered client acting for an
organisation. Its members are the Patients whose data the boundary opens to that organisation today
(``access_grants``: an active consent naming it, or a referral it sent), derived from the same rows and
conditions as ``service.auth.boundary.visible``. The program's own clients see every partner's Group;
a partner's client sees its own only."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncConnection

from mappings.ids import fhir_id
from service.auth.boundary import grants_in_force
from service.domain import Program
from service.store.tables import access_grants, auth_clients, ehr_connections

KIND = "partner-group"


@dataclass(frozen=True)
class Partner:
    organization: str
    """The organisation's key as the boundary keeps it (``system|value``)."""
    names: tuple[str, ...]
    """Its EHR connections and clients."""
    group_id: str


async def partners(conn: AsyncConnection, program: Program, organization: str | None = None) -> list[Partner]:
    """The program's partners, by organisation (``organization``: only that one, the client's own)."""
    c, a = ehr_connections.c, auth_clients.c
    rows = [
        *(await conn.execute(select(c.organization, c.name).where(c.program_id == program.id))),
        *(
            await conn.execute(
                select(a.organization, a.client_id).where(a.program_id == program.id, a.organization.is_not(None))
            )
        ),
    ]
    names: dict[str, set[str]] = {}
    for key, name in rows:
        if key and (organization is None or key == organization):
            names.setdefault(str(key), set()).add(str(name))
    return [
        Partner(key, tuple(sorted(found)), fhir_id(program.identifier_system, KIND, key))
        for key, found in sorted(names.items())
    ]


async def partner(conn: AsyncConnection, program: Program, group_id: str, organization: str | None) -> Partner | None:
    """The partner whose Group has this id, if the client may see it."""
    return next((p for p in await partners(conn, program, organization) if p.group_id == group_id), None)


def members_query(program_id: str, organization: str, today: date | None = None) -> Select[Any]:
    """The Patient ids the boundary opens to ``organization`` today (the grants ``visible`` reads)."""
    g = access_grants.c
    return select(g.patient_id).where(*grants_in_force(program_id, organization, today)).distinct()


async def members(conn: AsyncConnection, program_id: str, organization: str) -> list[str]:
    return sorted(str(row.patient_id) for row in await conn.execute(members_query(program_id, organization)))


def resource(found: Partner, patient_ids: list[str]) -> dict[str, Any]:
    system, _, value = found.organization.partition("|")
    group: dict[str, Any] = {
        "resourceType": "Group",
        "id": found.group_id,
        "identifier": [{"system": system, "value": value}],
        "active": True,
        "type": "person",
        "actual": True,
        "name": f"Participants shared with {', '.join(found.names)}"[:200],
        "quantity": len(patient_ids),
    }
    if patient_ids:  # FHIR JSON has no empty arrays
        group["member"] = [{"entity": {"reference": f"Patient/{pid}"}} for pid in patient_ids]
    return group


def matches(found: Partner, ids: list[str] | None, identifiers: list[str] | None) -> bool:
    """``_id`` and ``identifier`` (``system|value``, ``value`` or ``system|``) of a Group search."""
    if ids is not None and found.group_id not in ids:
        return False
    if identifiers is None:
        return True
    system, _, value = found.organization.partition("|")
    for wanted in identifiers:
        if "|" not in wanted:
            if wanted == value:
                return True
            continue
        want_system, _, want_value = wanted.partition("|")
        if (not want_system or want_system == system) and (not want_value or want_value == value):
            return True
    return False
