"""The record types of the peer API: create body, references, frozen fields, filters, extra rules."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, create_model
from sqlalchemy.ext.asyncio import AsyncConnection

from service.domain import (
    CareTeamMemberFields,
    ConsentFields,
    GoalFields,
    NoteFields,
    ParticipantFields,
    PeerEncounterFields,
    PeerSpecialistFields,
    ReferralFields,
)
from service.domain.common import VersionMeta
from service.domain.consent import Consent
from service.domain.encounter import PeerEncounter, check_staffing, check_status_change
from service.domain.errors import ImmutableRecord, RuleViolation
from service.domain.note import Note, check_editable
from service.domain.referral import TERMINAL, Referral
from service.store import RecordRepository
from service.store import kinds as k
from service.store.repository import StoredKind

R = TypeVar("R", bound=VersionMeta)

# (conn, program_id, new content, current record or None on create)
Check = Callable[[AsyncConnection, str, Any, Any], Awaitable[None]]


async def _no_check(conn: AsyncConnection, program_id: str, new: Any, old: Any) -> None:
    return None


@dataclass(frozen=True)
class RecordType(Generic[R]):
    stored: StoredKind[R]
    path: str
    fields: type[BaseModel]
    references: dict[str, StoredKind[Any]] = field(default_factory=dict)
    frozen: frozenset[str] = frozenset()
    filters: tuple[str, ...] = ()
    time_filter: str | None = None
    check: Check = _no_check
    patch: type[BaseModel] = field(init=False)

    def __post_init__(self) -> None:
        editable = {
            name: (info.annotation | None, None)  # type: ignore[operator]
            for name, info in self.fields.model_fields.items()
            if name not in self.frozen
        }
        patch = create_model(  # type: ignore[call-overload]
            f"{self.fields.__name__.removesuffix('Fields')}Patch",
            __config__=ConfigDict(extra="forbid", str_strip_whitespace=True),
            __doc__=f"Fields of the {self.stored.label} to change; absent fields keep their value.",
            **editable,
        )
        object.__setattr__(self, "patch", patch)

    @property
    def repository(self) -> RecordRepository[R]:
        return RecordRepository(self.stored)


async def _check_encounter(conn: AsyncConnection, program_id: str, new: PeerEncounterFields, old: Any) -> None:
    if isinstance(old, PeerEncounter):
        check_status_change(old.status, new.status)
    specialist = await RecordRepository(k.SPECIALISTS).get(conn, program_id, new.specialist_id)
    check_staffing(new, specialist)
    goals = RecordRepository(k.GOALS)
    for goal_id in new.goal_ids:
        goal = await goals.find(conn, program_id, goal_id)
        if goal is None or goal.participant_id != new.participant_id:
            raise RuleViolation("goal_ids names a goal that is not this participant's")


async def _check_note(conn: AsyncConnection, program_id: str, new: NoteFields, old: Any) -> None:
    if isinstance(old, Note):
        check_editable(old)


async def _check_referral(conn: AsyncConnection, program_id: str, new: ReferralFields, old: Any) -> None:
    if isinstance(old, Referral) and old.status in TERMINAL:
        raise ImmutableRecord(f"a {old.status.value} referral is closed and cannot be edited")


async def _check_consent(conn: AsyncConnection, program_id: str, new: ConsentFields, old: Any) -> None:
    if isinstance(old, Consent) and old.revoked_at is not None:
        raise ImmutableRecord("a revoked consent cannot be edited; record a new consent")


SPECIALISTS = RecordType(k.SPECIALISTS, "specialists", PeerSpecialistFields, filters=("active",))
PARTICIPANTS = RecordType(k.PARTICIPANTS, "participants", ParticipantFields, filters=("birth_date",))
CARE_TEAM_MEMBERS = RecordType(
    k.CARE_TEAM_MEMBERS,
    "care-team-members",
    CareTeamMemberFields,
    references={"participant_id": k.PARTICIPANTS, "specialist_id": k.SPECIALISTS},
    frozen=frozenset({"participant_id"}),
    filters=("participant_id", "specialist_id", "role"),
)
ENCOUNTERS = RecordType(
    k.ENCOUNTERS,
    "encounters",
    PeerEncounterFields,
    references={"participant_id": k.PARTICIPANTS, "specialist_id": k.SPECIALISTS},
    frozen=frozenset({"participant_id"}),
    filters=("participant_id", "specialist_id", "status", "modality"),
    time_filter="start",
    check=_check_encounter,
)
NOTES = RecordType(
    k.NOTES,
    "notes",
    NoteFields,
    references={"encounter_id": k.ENCOUNTERS, "author_id": k.SPECIALISTS},
    frozen=frozenset({"encounter_id"}),
    filters=("encounter_id", "author_id", "status"),
    check=_check_note,
)
REFERRALS = RecordType(
    k.REFERRALS,
    "referrals",
    ReferralFields,
    references={"participant_id": k.PARTICIPANTS},
    frozen=frozenset({"participant_id", "identifiers"}),  # the clinic's ids are claimed on receipt
    filters=("participant_id", "status", "priority", "assigned_specialist_id"),
    check=_check_referral,
)
CONSENTS = RecordType(
    k.CONSENTS,
    "consents",
    ConsentFields,
    references={"participant_id": k.PARTICIPANTS},
    frozen=frozenset({"participant_id"}),
    filters=("participant_id",),
    check=_check_consent,
)
GOALS = RecordType(
    k.GOALS,
    "goals",
    GoalFields,
    references={"participant_id": k.PARTICIPANTS},
    frozen=frozenset({"participant_id"}),
    filters=("participant_id", "status"),
)

ALL: tuple[RecordType[Any], ...] = (
    SPECIALISTS,
    PARTICIPANTS,
    CARE_TEAM_MEMBERS,
    ENCOUNTERS,
    NOTES,
    REFERRALS,
    CONSENTS,
    GOALS,
)
