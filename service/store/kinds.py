"""Where each record kind lives: table, model and the content fields copied to indexed columns."""

from __future__ import annotations

from service.domain import (
    CareTeamMember,
    Consent,
    Goal,
    Note,
    Participant,
    PeerEncounter,
    PeerSpecialist,
    Program,
    Referral,
)
from service.domain.assessment import Assessment
from service.domain.coverage import Coverage

from . import tables
from .repository import StoredKind

PROGRAMS = StoredKind("program", "program", tables.programs, Program, ("code",), tenant=False)
SPECIALISTS = StoredKind("specialist", "peer specialist", tables.specialists, PeerSpecialist, ("active",))
PARTICIPANTS = StoredKind("participant", "participant", tables.participants, Participant, ("birth_date",))
CARE_TEAM_MEMBERS = StoredKind(
    "care_team_member",
    "care-team member",
    tables.care_team_members,
    CareTeamMember,
    ("participant_id", "specialist_id", "role"),
)
ENCOUNTERS = StoredKind(
    "encounter",
    "encounter",
    tables.encounters,
    PeerEncounter,
    ("participant_id", "specialist_id", "status", "modality", "start"),
)
NOTES = StoredKind("note", "note", tables.notes, Note, ("encounter_id", "author_id", "status", "amends_id"))
REFERRALS = StoredKind(
    "referral",
    "referral",
    tables.referrals,
    Referral,
    ("participant_id", "status", "priority", "assigned_specialist_id"),
)
CONSENTS = StoredKind("consent", "consent", tables.consents, Consent, ("participant_id",))
GOALS = StoredKind("goal", "goal", tables.goals, Goal, ("participant_id", "status"))
ASSESSMENTS = StoredKind(
    "assessment",
    "assessment",
    tables.assessments,
    Assessment,
    ("participant_id", "instrument", "completed_at", "status", "amends_id"),
)
COVERAGES = StoredKind("coverage", "coverage", tables.coverages, Coverage, ("participant_id", "payer"))
