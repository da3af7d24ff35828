"""Exchange with EHRs: connections, the transactional outbox, what each EHR holds, polled referrals."""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    UniqueConstraint,
    text,
)

from ..types import UTCDateTime
from .base import ID, PK, metadata

# --- Exchange with EHRs ------------------------------------------------------------------------------
# A hospital EHR the program exchanges with. The private key is never stored: key_file names a PEM
# file, or key_env an environment variable holding the PEM.
ehr_connections = Table(
    "ehr_connections",
    metadata,
    Column("pk", PK, primary_key=True, autoincrement=True),
    Column("name", String(100), nullable=False, unique=True),
    Column("program_id", ID, ForeignKey("programs.id"), nullable=False),
    Column("base_url", String(500), nullable=False),
    Column("client_id", String(200), nullable=False),
    Column("key_file", String(500), nullable=True),
    Column("key_env", String(100), nullable=True),
    Column("kid", String(200), nullable=True),
    Column("alg", String(10), nullable=False),
    Column("scopes", String(2000), nullable=False),
    Column("profile", String(20), nullable=False),
    Column("organization", String(300), nullable=False),
    Column("push", String(200), nullable=False),
    Column("poll_referrals", Boolean, nullable=False),
    Column("poll_seconds", Integer, nullable=False),
    Column("rate_per_second", Integer, nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("task_owner", String(300), nullable=False),
    Column("poll_cursor", String(40), nullable=True),
    Column("polled_at", UTCDateTime, nullable=True),
    Column("last_success_at", UTCDateTime, nullable=True),
    Column("token_failures", Integer, nullable=False, default=0),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    # the EHR refused a transaction Bundle: its batches go as single writes until this is cleared
    Column("bundles_refused_at", UTCDateTime, nullable=True),
    Column("bundles_refused_reason", String(500), nullable=True),
)

# The transactional outbox: a row per change an EHR should see, written in the transaction of the
# change. At most one waiting row per (connection, kind, record): a delivery maps the record as it is
# when sent, so later changes of a record still waiting ride along.
outbox = Table(
    "outbox",
    metadata,
    Column("pk", PK, primary_key=True, autoincrement=True),
    Column("program_id", ID, ForeignKey("programs.id"), nullable=False),
    Column("connection", String(100), nullable=False),
    Column("kind", String(40), nullable=False),
    Column("record_id", ID, nullable=False),
    Column("participant_id", ID, nullable=False),
    Column("state", String(12), nullable=False),  # pending, sending, delivered, dead, withheld
    Column("attempts", Integer, nullable=False, default=0),
    Column("created_at", UTCDateTime, nullable=False),
    Column("next_attempt_at", UTCDateTime, nullable=False),
    Column("claimed_by", String(100), nullable=True),
    Column("claimed_until", UTCDateTime, nullable=True),
    Column("finished_at", UTCDateTime, nullable=True),
    Column("last_error", String(500), nullable=True),
    # what the EHR answered when it refused: its HTTP status and its OperationOutcome's issues (severity,
    # code, diagnostics, details.text; never resource content), truncated
    Column("ehr_status", Integer, nullable=True),
    Column("ehr_outcome", String(500), nullable=True),
    Index(None, "state", "next_attempt_at"),
    Index(None, "connection", "participant_id", "pk"),
    Index(
        "uq_outbox_waiting",
        "connection",
        "kind",
        "record_id",
        unique=True,
        sqlite_where=text("state = 'pending'"),
        postgresql_where=text("state = 'pending'"),
    ),
)

# What each EHR holds of ours: the content hash last delivered per resource (a resend of unchanged
# content is skipped), and the id the EHR gave it when it assigned its own (conditional create).
ehr_resources = Table(
    "ehr_resources",
    metadata,
    Column("pk", PK, primary_key=True, autoincrement=True),
    Column("connection", String(100), nullable=False),
    Column("resource_type", String(40), nullable=False),
    Column("resource_id", ID, nullable=False),
    Column("ehr_id", String(64), nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("delivered_at", UTCDateTime, nullable=False),
    UniqueConstraint("connection", "resource_type", "resource_id"),
)

# Referrals received by polling an EHR: the EHR's Task (id, version) the closed loop updates.
ehr_referrals = Table(
    "ehr_referrals",
    metadata,
    Column("pk", PK, primary_key=True, autoincrement=True),
    Column("connection", String(100), nullable=False),
    Column("referral_id", ID, nullable=False),
    Column("task_id", String(64), nullable=False),
    Column("task_version", String(40), nullable=True),
    UniqueConstraint("connection", "task_id"),
    Index(None, "referral_id"),
)
