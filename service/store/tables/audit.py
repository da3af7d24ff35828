"""The audit log (one hash chain), its search index and its archive anchors."""

from __future__ import annotations

from sqlalchemy import (
    Column,
    ForeignKey,
    Index,
    String,
    Table,
)

from ..types import JsonDocument, UTCDateTime
from .base import ID, PK, metadata

# --- Audit ------------------------------------------------------------------------------------------
# One row per audited event (its FHIR AuditEvent shape is built from these columns and detail), in one
# hash chain (service/audit/chain.py): seq is the record's position, prev_hash the hash of record seq-1
# (of the archive anchor, or the genesis value, for the first live record), hash the SHA-256 of the
# canonical JSON of every other column. Append-only: on PostgreSQL a trigger refuses UPDATE, and
# DELETE unless the archiver's transaction set peerlink.audit_archive = on (migration 0005).
audit_log = Table(
    "audit_log",
    metadata,
    Column("seq", PK, primary_key=True, autoincrement=False),
    Column("recorded", UTCDateTime, nullable=False),
    Column("program_id", ID, nullable=True),
    Column("type", String(40), nullable=False),
    Column("subtype", String(40), nullable=False),
    Column("action", String(1), nullable=False),
    Column("outcome", String(2), nullable=False),
    Column("client_id", String(100), nullable=True),
    Column("organization", String(300), nullable=True),
    Column("address", String(100), nullable=True),
    Column("detail", JsonDocument, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Index(None, "recorded"),
    Index(None, "client_id", "recorded"),
)

# The search index of the audit log: one row per Patient (kind "patient", ref = the Patient id) and per
# other resource (kind "entity", ref = "Type/id") an event touched, derived from its detail (which the
# chain covers; `peerlink audit verify` checks these rows against it). The key is the index itself.
audit_entities = Table(
    "audit_entities",
    metadata,
    Column("kind", String(10), primary_key=True),
    Column("ref", String(200), primary_key=True),
    Column("seq", PK, ForeignKey("audit_log.seq"), primary_key=True, autoincrement=False, index=True),
    sqlite_with_rowid=False,
)

# One row per archive run: records first_seq..last_seq moved to an NDJSON file; hash is the hash of
# record last_seq, from which the live chain continues (prev_hash: the anchor before, or the genesis).
audit_anchors = Table(
    "audit_anchors",
    metadata,
    Column("pk", PK, primary_key=True, autoincrement=True),
    Column("first_seq", PK, nullable=False),
    Column("last_seq", PK, nullable=False, unique=True),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Column("recorded_from", UTCDateTime, nullable=False),
    Column("recorded_to", UTCDateTime, nullable=False),
    Column("file", String(500), nullable=False),
    Column("file_sha256", String(64), nullable=False),
    Column("archived_at", UTCDateTime, nullable=False),
)
