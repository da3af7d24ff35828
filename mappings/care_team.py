"""A participant's care-team members -> one CareTeam (US Core CareTeam).

Members are ordered by (period start, member id), so the same members give the same resource
whatever order the store returns them in. Our peer specialists are referenced through their
PractitionerRole (kind "specialist-role"), which US Core CareTeam.participant.member allows.
Outside clinicians have no record of their own, so each travels as a contained Practitioner (name,
and NPI when known; without an NPI the member's business identifier under the program's
"care-team-member" system keeps US Core Practitioner's identifier 1..* satisfied), their employer as
a contained Organization in participant.onBehalfOf (allowed because the member is a Practitioner,
invariant ctp-1). A care team with no members is not a US Core CareTeam (participant 1..*): callers
withdraw the resource instead, so an empty list is refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from service.domain import CareTeamMember, CareTeamRole
from service.domain.common import DatePeriod

from . import codes
from .codes import Code
from .context import MappingContext
from .organization import contained as contained_organization
from .organization import npi_identifier
from .practitioner import human_name

KIND = "care-team"
MEMBER_KIND = "care-team-member"


class CareTeamCodes(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    roles: dict[CareTeamRole, list[Code]] = Field(description="role -> the codings of participant.role")


CODES = codes.load("care_team", CareTeamCodes)
missing = set(CareTeamRole) - set(CODES.roles)
if missing:
    raise codes.CodeTableError(f"care_team.toml has no role codes for {sorted(missing)}")


def _period(period: DatePeriod) -> dict[str, str]:
    out = {"start": period.start.isoformat()}
    if period.end:
        out["end"] = period.end.isoformat()
    return out


def _role(role: CareTeamRole, ctx: MappingContext) -> dict[str, Any]:
    return {"coding": [code.coding(ctx.system) for code in CODES.roles[role]]}


def _team_period(members: Sequence[CareTeamMember]) -> dict[str, str]:
    out = {"start": min(m.period.start for m in members).isoformat()}
    ends = [m.period.end for m in members]
    if all(end is not None for end in ends):
        out["end"] = max(end for end in ends if end is not None).isoformat()
    return out


def to_fhir(participant_id: str, members: Sequence[CareTeamMember], ctx: MappingContext) -> dict[str, Any]:
    if not members:
        raise ValueError("a care team needs at least one member (US Core CareTeam.participant 1..*)")
    strangers = sorted({m.participant_id for m in members} - {participant_id})
    if strangers:
        raise ValueError("every member must belong to the participant's care team")
    ordered = sorted(members, key=lambda m: (m.period.start, m.id))
    contained: list[dict[str, Any]] = []
    participants: list[dict[str, Any]] = []
    for number, member in enumerate(ordered, 1):
        entry: dict[str, Any] = {"role": [_role(member.role, ctx)]}
        if member.specialist_id is not None:
            entry["member"] = ctx.reference("specialist-role", member.specialist_id)
        elif (clinician := member.clinician) is not None:
            local_id = f"clinician-{number}"
            identifier = npi_identifier(clinician.npi) if clinician.npi else ctx.identifier(MEMBER_KIND, member.id)
            contained.append(
                {
                    "resourceType": "Practitioner",
                    "id": local_id,
                    "identifier": [identifier],
                    "name": [human_name(clinician.name)],
                }
            )
            entry["member"] = {"reference": f"#{local_id}", "display": clinician.name.text}
            if clinician.organization is not None:
                org_id = f"organization-{number}"
                contained.append(contained_organization(clinician.organization, org_id))
                entry["onBehalfOf"] = {"reference": f"#{org_id}", "display": clinician.organization.name}
        entry["period"] = _period(member.period)
        participants.append(entry)
    resource: dict[str, Any] = {"resourceType": "CareTeam", "id": ctx.id_for(KIND, participant_id)}
    if contained:
        resource["contained"] = contained
    resource |= {
        "identifier": [ctx.identifier(KIND, participant_id)],
        "status": "active",
        "subject": ctx.reference("participant", participant_id),
        "period": _team_period(ordered),
        "participant": participants,
        "managingOrganization": [ctx.reference("program", ctx.program.id, ctx.program.name)],
    }
    return ctx.finish(resource)
