"""Whose records a peer specialist may open in the console: their own caseload.

A participant is on a specialist's caseload while the specialist is on the participant's care team
(a membership whose period has not ended) or holds the participant's open referral (accepted or in
progress, the same open caseload matching counts against a specialist's capacity).
"""

from __future__ import annotations

from datetime import date

from sqlalchemy.ext.asyncio import AsyncConnection

from service.domain.care_team import CareTeamMember
from service.domain.referral import Referral
from service.fhir.render import all_records
from service.records.matching import OPEN_CASELOAD
from service.store import kinds as k


async def caseload(conn: AsyncConnection, program_id: str, specialist_id: str, today: date) -> set[str]:
    """The ids of the participants on ``specialist_id``'s caseload on ``today``."""
    members: list[CareTeamMember] = await all_records(
        conn, k.CARE_TEAM_MEMBERS, program_id, specialist_id=specialist_id
    )
    found = {m.participant_id for m in members if m.period.end is None or m.period.end >= today}
    referrals: list[Referral] = await all_records(conn, k.REFERRALS, program_id, assigned_specialist_id=specialist_id)
    found |= {r.participant_id for r in referrals if r.status.value in OPEN_CASELOAD}
    return found


async def on_caseload(
    conn: AsyncConnection, program_id: str, specialist_id: str, participant_id: str, today: date
) -> bool:
    return participant_id in await caseload(conn, program_id, specialist_id, today)
