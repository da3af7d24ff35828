"""Bulk export jobs, claims (control numbers, files, lines) and subscriptions with their events."""

from __future__ import annotations

from sqlalchemy import (
    Column,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from ..types import JsonDocument, UTCDateTime
from .base import ID, PK, metadata

# --- Bulk export ($export) ----------------------------------------------------------------------------
# One row per export job: what was asked (params), by whom (client, organisation: the data boundary the
# job runs in), its state (queued, running, done, failed, cancelled), the worker that holds it until its
# lease runs out (a job whose worker died is claimed again and restarted), and, once done, the manifest's
# output and error files (manifest). Rows and files are deleted once expires_at has passed.
bulk_exports = Table(
    "bulk_exports",
    metadata,
    Column("pk", PK, primary_key=True, autoincrement=True),
    Column("id", ID, nullable=False, unique=True),
    Column("program_id", ID, ForeignKey("programs.id"), nullable=False),
    Column("client_id", String(100), nullable=True),
    Column("organization", String(300), nullable=True),
    Column("request", String(2000), nullable=False),
    Column("params", JsonDocument, nullable=False),
    Column("state", String(12), nullable=False),
    Column("transaction_time", UTCDateTime, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime, nullable=True),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("claimed_by", String(100), nullable=True),
    Column("claimed_until", UTCDateTime, nullable=True),
    Column("attempts", Integer, nullable=False, default=0),
    Column("progress", Integer, nullable=False, default=0),
    Column("manifest", JsonDocument, nullable=True),
    Column("error", String(500), nullable=True),
    Index(None, "state", "claimed_until"),
    Index(None, "expires_at"),
)

# --- Claims ----------------------------------------------------------------------------------------
# The X12 control numbers a program has used (interchange, group, transaction, claim): each export
# takes the next ones in its transaction, so a number is never used twice.
claim_counters = Table(
    "claim_counters",
    metadata,
    Column("program_id", ID, ForeignKey("programs.id"), primary_key=True),
    Column("name", String(20), primary_key=True),
    Column("value", PK, nullable=False),
)

# One row per 837P file written (its text kept: what was disclosed to the payer), and the 999's verdict.
claim_files = Table(
    "claim_files",
    metadata,
    Column("pk", PK, primary_key=True, autoincrement=True),
    Column("program_id", ID, ForeignKey("programs.id"), nullable=False, index=True),
    Column("payer", String(64), nullable=False),
    Column("interchange", PK, nullable=False),
    Column("group_control", PK, nullable=False),
    Column("transaction_control", PK, nullable=False),
    Column("claims", Integer, nullable=False),
    Column("content", Text, nullable=False),
    Column("ack_code", String(2), nullable=True),
    Column("ack_errors", JsonDocument, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("acked_at", UTCDateTime, nullable=True),
    UniqueConstraint("program_id", "interchange"),
)

# One row per claim sent (one service line: one session). A session has at most one current row
# (replaced_by empty); a corrected claim is a new row (frequency 7) naming the one it replaces.
# status: sent, accepted, rejected (999), paid, partial, denied (835). Amounts are decimal text.
claim_lines = Table(
    "claim_lines",
    metadata,
    Column("pk", PK, primary_key=True, autoincrement=True),
    Column("program_id", ID, ForeignKey("programs.id"), nullable=False),
    Column("file_pk", PK, ForeignKey("claim_files.pk"), nullable=False, index=True),
    Column("claim_number", String(38), nullable=False, unique=True),
    Column("line_control", String(50), nullable=False, unique=True),
    Column("session_id", ID, nullable=False),
    Column("participant_id", ID, nullable=False),
    Column("payer", String(64), nullable=False),
    Column("service_date", Date, nullable=False),
    Column("frequency", String(1), nullable=False),
    Column("replaces", String(38), nullable=True),
    Column("replaced_by", String(38), nullable=True),
    Column("fingerprint", String(64), nullable=False),
    Column("units", Integer, nullable=False),
    Column("charge", String(20), nullable=False),
    Column("status", String(12), nullable=False),
    Column("paid", String(20), nullable=True),
    Column("adjustments", JsonDocument, nullable=False),
    Column("payer_claim", String(50), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Index(None, "program_id", "session_id"),
    Index(None, "program_id", "service_date"),
)

# --- Subscriptions (R5 Backport IG on R4) ---------------------------------------------------------------
# One row per Subscription: who made it (client, organisation: the data boundary its notifications stay
# in), the topic (its canonical and PeerLink's key for it), the filters, the rest-hook channel, and the
# last event number given out (events_count). The Subscription resource as the client sent it is kept.
subscriptions = Table(
    "subscriptions",
    metadata,
    Column("pk", PK, primary_key=True, autoincrement=True),
    Column("id", ID, nullable=False, unique=True),
    Column("program_id", ID, ForeignKey("programs.id"), nullable=False),
    Column("client_id", String(100), nullable=True),
    Column("organization", String(300), nullable=True),
    Column("status", String(12), nullable=False),
    Column("topic", String(300), nullable=False),
    Column("topic_key", String(40), nullable=False),
    Column("filters", JsonDocument, nullable=False),
    Column("endpoint", String(1000), nullable=False),
    Column("headers", JsonDocument, nullable=False),
    Column("content", String(16), nullable=False),
    Column("heartbeat_seconds", Integer, nullable=True),
    Column("timeout_seconds", Integer, nullable=False),
    Column("max_count", Integer, nullable=False),
    Column("retry_hours", Integer, nullable=True),  # the subscription's own retry horizon, if it sets one
    Column("end_at", UTCDateTime, nullable=True),
    Column("resource", JsonDocument, nullable=False),
    Column("events_count", Integer, nullable=False, default=0),
    Column("version_id", Integer, nullable=False, default=1),
    Column("error", String(500), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("last_sent_at", UTCDateTime, nullable=True),
    Column("claimed_by", String(100), nullable=True),
    Column("claimed_until", UTCDateTime, nullable=True),
    Index(None, "program_id", "status"),
)

# One row per event of a Subscription, written in the change's transaction: its number (1, 2, ... per
# subscription), the focus (type, id, version of the projected resource), and its delivery: pending until
# the endpoint answers 2xx (sent), retried with backoff, dead-lettered with the reason after the horizon.
subscription_events = Table(
    "subscription_events",
    metadata,
    Column("pk", PK, primary_key=True, autoincrement=True),
    Column("subscription_pk", PK, ForeignKey("subscriptions.pk", ondelete="CASCADE"), nullable=False),
    Column("event_number", Integer, nullable=False),
    Column("resource_type", String(40), nullable=False),
    Column("resource_id", ID, nullable=False),
    Column("version_id", Integer, nullable=False),
    Column("occurred_at", UTCDateTime, nullable=False),
    Column("state", String(12), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UTCDateTime, nullable=False),
    Column("sent_at", UTCDateTime, nullable=True),
    Column("last_error", String(500), nullable=True),
    UniqueConstraint("subscription_pk", "event_number"),
    UniqueConstraint(
        "subscription_pk", "resource_type", "resource_id", "version_id", name="uq_subscription_events_focus"
    ),
    Index(None, "state", "next_attempt_at"),
)
