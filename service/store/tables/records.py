"""Program records: one table per record type, all on the same spine, and every version of every record."""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    UniqueConstraint,
)

from ..types import JsonDocument, UTCDateTime
from .base import ID, PK, metadata, spine

programs = Table("programs", metadata, *spine(tenant=False), Column("code", String(40), nullable=False, unique=True))

specialists = Table("specialists", metadata, *spine(), Column("active", Boolean, nullable=False))

participants = Table("participants", metadata, *spine(), Column("birth_date", Date, nullable=False))

care_team_members = Table(
    "care_team_members",
    metadata,
    *spine(),
    Column("participant_id", ID, ForeignKey("participants.id"), nullable=False, index=True),
    Column("specialist_id", ID, ForeignKey("specialists.id"), nullable=True, index=True),
    Column("role", String(40), nullable=False),
)

encounters = Table(
    "encounters",
    metadata,
    *spine(),
    Column("participant_id", ID, ForeignKey("participants.id"), nullable=False, index=True),
    Column("specialist_id", ID, ForeignKey("specialists.id"), nullable=False, index=True),
    Column("status", String(20), nullable=False),
    Column("modality", String(20), nullable=False),
    Column("start", UTCDateTime, nullable=False, index=True),
)

notes = Table(
    "notes",
    metadata,
    *spine(),
    Column("encounter_id", ID, ForeignKey("encounters.id"), nullable=False, index=True),
    Column("author_id", ID, ForeignKey("specialists.id"), nullable=False, index=True),
    Column("status", String(20), nullable=False),
    Column("amends_id", ID, ForeignKey("notes.id"), nullable=True, index=True),
)

referrals = Table(
    "referrals",
    metadata,
    *spine(),
    Column("participant_id", ID, ForeignKey("participants.id"), nullable=False, index=True),
    Column("status", String(20), nullable=False, index=True),
    Column("priority", String(10), nullable=False),
    Column("assigned_specialist_id", ID, ForeignKey("specialists.id"), nullable=True, index=True),
)

consents = Table(
    "consents",
    metadata,
    *spine(),
    Column("participant_id", ID, ForeignKey("participants.id"), nullable=False, index=True),
)

goals = Table(
    "goals",
    metadata,
    *spine(),
    Column("participant_id", ID, ForeignKey("participants.id"), nullable=False, index=True),
    Column("status", String(20), nullable=False),
)

assessments = Table(
    "assessments",
    metadata,
    *spine(),
    Column("participant_id", ID, ForeignKey("participants.id"), nullable=False, index=True),
    Column("instrument", String(64), nullable=False, index=True),
    Column("completed_at", UTCDateTime, nullable=False, index=True),
    Column("status", String(20), nullable=False),
    Column("amends_id", ID, ForeignKey("assessments.id"), nullable=True, index=True),
)

coverages = Table(
    "coverages",
    metadata,
    *spine(),
    Column("participant_id", ID, ForeignKey("participants.id"), nullable=False, index=True),
    Column("payer", String(64), nullable=False, index=True),
)

record_versions = Table(
    "record_versions",
    metadata,
    Column("pk", PK, primary_key=True, autoincrement=True),
    Column("kind", String(40), nullable=False),
    Column("record_id", ID, nullable=False),
    Column("program_id", ID, nullable=True),
    Column("version", Integer, nullable=False),
    Column("recorded_at", UTCDateTime, nullable=False),
    Column("data", JsonDocument, nullable=False),
    UniqueConstraint("kind", "record_id", "version"),
    Index(None, "program_id", "kind", "recorded_at"),
)
