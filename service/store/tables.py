"""The database schema.

Every record table has the same spine: an integer ``pk`` (keyset paging order), the record ``id``,
its ``program_id`` (tenant), a ``version`` for optimistic concurrency, timestamps and the record's
content as a JSON document. A few content fields are copied into indexed columns so lists filter
in SQL. ``record_versions`` keeps every version of every record (nothing changes without a trace).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.schema import SchemaItem

from .types import JsonDocument, UTCDateTime

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
    }
)

PK = BigInteger().with_variant(Integer(), "sqlite")
ID = String(64)


def _spine(*, tenant: bool = True) -> list[SchemaItem]:
    items: list[SchemaItem] = [
        Column("pk", PK, primary_key=True, autoincrement=True),
        Column("id", ID, nullable=False, unique=True),
    ]
    if tenant:
        items.append(Column("program_id", ID, ForeignKey("programs.id"), nullable=False, index=True))
    items += [
        Column("version", Integer, nullable=False),
        Column("created_at", UTCDateTime, nullable=False),
        Column("updated_at", UTCDateTime, nullable=False),
        Column("data", JsonDocument, nullable=False),
    ]
    return items


programs = Table("programs", metadata, *_spine(tenant=False), Column("code", String(40), nullable=False, unique=True))

specialists = Table("specialists", metadata, *_spine(), Column("active", Boolean, nullable=False))

participants = Table("participants", metadata, *_spine(), Column("birth_date", Date, nullable=False))

care_team_members = Table(
    "care_team_members",
    metadata,
    *_spine(),
    Column("participant_id", ID, ForeignKey("participants.id"), nullable=False, index=True),
    Column("specialist_id", ID, ForeignKey("specialists.id"), nullable=True, index=True),
    Column("role", String(40), nullable=False),
)

encounters = Table(
    "encounters",
    metadata,
    *_spine(),
    Column("participant_id", ID, ForeignKey("participants.id"), nullable=False, index=True),
    Column("specialist_id", ID, ForeignKey("specialists.id"), nullable=False, index=True),
    Column("status", String(20), nullable=False),
    Column("modality", String(20), nullable=False),
    Column("start", UTCDateTime, nullable=False, index=True),
)

notes = Table(
    "notes",
    metadata,
    *_spine(),
    Column("encounter_id", ID, ForeignKey("encounters.id"), nullable=False, index=True),
    Column("author_id", ID, ForeignKey("specialists.id"), nullable=False, index=True),
    Column("status", String(20), nullable=False),
    Column("amends_id", ID, ForeignKey("notes.id"), nullable=True, index=True),
)

referrals = Table(
    "referrals",
    metadata,
    *_spine(),
    Column("participant_id", ID, ForeignKey("participants.id"), nullable=False, index=True),
    Column("status", String(20), nullable=False, index=True),
    Column("priority", String(10), nullable=False),
    Column("assigned_specialist_id", ID, ForeignKey("specialists.id"), nullable=True, index=True),
)

consents = Table(
    "consents",
    metadata,
    *_spine(),
    Column("participant_id", ID, ForeignKey("participants.id"), nullable=False, index=True),
)

goals = Table(
    "goals",
    metadata,
    *_spine(),
    Column("participant_id", ID, ForeignKey("participants.id"), nullable=False, index=True),
    Column("status", String(20), nullable=False),
)

assessments = Table(
    "assessments",
    metadata,
    *_spine(),
    Column("participant_id", ID, ForeignKey("participants.id"), nullable=False, index=True),
    Column("instrument", String(64), nullable=False, index=True),
    Column("completed_at", UTCDateTime, nullable=False, index=True),
    Column("status", String(20), nullable=False),
    Column("amends_id", ID, ForeignKey("assessments.id"), nullable=True, index=True),
)

coverages = Table(
    "coverages",
    metadata,
    *_spine(),
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

# --- FHIR projection: the canonical, validated JSON of every resource we serve ------------------
# Written in the same transaction as the record it comes from; reads and searches splice these bytes.
fhir_resources = Table(
    "fhir_resources",
    metadata,
    Column("pk", PK, primary_key=True, autoincrement=True),
    Column("program_id", ID, ForeignKey("programs.id"), nullable=False),
    Column("resource_type", String(40), nullable=False),
    Column("resource_id", ID, nullable=False),
    Column("version_id", Integer, nullable=False),
    Column("last_updated", UTCDateTime, nullable=False),
    Column("source_kind", String(40), nullable=False),
    Column("source_id", ID, nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("body", LargeBinary, nullable=False),
    Column("patient_id", ID, nullable=True),  # the Patient compartment it belongs to (data boundaries)
    UniqueConstraint("program_id", "resource_type", "resource_id"),
    Index(None, "program_id", "resource_type", "last_updated"),
    Index(None, "source_kind", "source_id"),
)

fhir_versions = Table(
    "fhir_versions",
    metadata,
    Column("pk", PK, primary_key=True, autoincrement=True),
    Column("program_id", ID, ForeignKey("programs.id"), nullable=False),
    Column("resource_type", String(40), nullable=False),
    Column("resource_id", ID, nullable=False),
    Column("version_id", Integer, nullable=False),
    Column("last_updated", UTCDateTime, nullable=False),
    Column("body", LargeBinary, nullable=False),
    UniqueConstraint("program_id", "resource_type", "resource_id", "version_id"),
    Index(None, "program_id", "resource_type", "last_updated"),
)

# One row per (resource, search parameter, value): token = "system|code", "|code"-less code,
# "Type/id" reference or lower-cased string; moment = a date or dateTime as UTC.
fhir_search = Table(
    "fhir_search",
    metadata,
    Column("pk", PK, primary_key=True, autoincrement=True),
    Column("resource_pk", PK, ForeignKey("fhir_resources.pk", ondelete="CASCADE"), nullable=False, index=True),
    Column("program_id", ID, nullable=False),
    Column("resource_type", String(40), nullable=False),
    Column("param", String(40), nullable=False),
    Column("token", String(300), nullable=True),
    Column("moment", UTCDateTime, nullable=True),
    Index(None, "program_id", "resource_type", "param", "token"),
    Index(None, "program_id", "resource_type", "param", "moment"),
)

# --- Inbound FHIR ----------------------------------------------------------------------------------
# Identifiers a hospital or clinic gave to what it sent us (a ServiceRequest's placer order number,
# a Patient's MRN), claimed in the transaction that stores the record: the unique key makes two
# concurrent deliveries of the same order (or of a new patient) end up as one record.
external_identifiers = Table(
    "external_identifiers",
    metadata,
    Column("pk", PK, primary_key=True, autoincrement=True),
    Column("program_id", ID, ForeignKey("programs.id"), nullable=False),
    Column("kind", String(40), nullable=False),
    Column("system", String(500), nullable=False),
    Column("value", String(200), nullable=False),
    Column("record_id", ID, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("program_id", "kind", "system", "value"),
    Index(None, "kind", "record_id"),
)

# A referral's clinical context: the resources a clinic sent beside its ServiceRequest (requester,
# reason Condition, Observations, Consent ...), kept as received (references rewritten to what PeerLink
# serves), one row per (referral, type, the clinic's key for it); projected into fhir_resources.
clinical_context = Table(
    "clinical_context",
    metadata,
    Column("pk", PK, primary_key=True, autoincrement=True),
    Column("program_id", ID, ForeignKey("programs.id"), nullable=False),
    Column("referral_id", ID, nullable=False),
    Column("resource_type", String(40), nullable=False),
    Column("clinic_key", String(800), nullable=False),
    Column("resource_id", ID, nullable=False),
    Column("role", String(20), nullable=False),  # reason | supporting
    Column("body", LargeBinary, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("program_id", "referral_id", "resource_type", "clinic_key"),
    Index(None, "program_id", "referral_id"),
)

# Records created from inbound FHIR that a person should look at (a participant created because no
# participant had the hospital's MRN); resolved_at is set once someone has.
review_flags = Table(
    "review_flags",
    metadata,
    Column("pk", PK, primary_key=True, autoincrement=True),
    Column("program_id", ID, ForeignKey("programs.id"), nullable=False),
    Column("kind", String(40), nullable=False),
    Column("record_id", ID, nullable=False),
    Column("reason", String(200), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("resolved_at", UTCDateTime, nullable=True),
    Index(None, "program_id", "resolved_at"),
    Index(None, "kind", "record_id"),
)

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

# --- Security (SMART backend services) -------------------------------------------------------------
# Registered clients: their public keys (inline JWKS or a JWKS URL), the scopes they may be granted
# and the organisation they act for (NULL: the peer program itself).
auth_clients = Table(
    "auth_clients",
    metadata,
    Column("pk", PK, primary_key=True, autoincrement=True),
    Column("client_id", String(100), nullable=False, unique=True),
    Column("program_id", ID, ForeignKey("programs.id"), nullable=False),
    Column("organization", String(300), nullable=True),
    Column("scopes", String(2000), nullable=False),
    Column("jwks", JsonDocument, nullable=True),
    Column("jwks_url", String(500), nullable=True),
    Column("disabled", Boolean, nullable=False, default=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

# Client-assertion ids seen while they are valid: the unique key refuses a replay on every replica.
auth_assertions = Table(
    "auth_assertions",
    metadata,
    Column("pk", PK, primary_key=True, autoincrement=True),
    Column("client_id", String(100), nullable=False),
    Column("jti", String(255), nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    UniqueConstraint("client_id", "jti"),
    Index(None, "expires_at"),
)

# What an outside organisation may see of a participant: one row per resource type a consent (or a
# referral the organisation sent) opens to it; source_id narrows the row to one record's resources.
access_grants = Table(
    "access_grants",
    metadata,
    Column("pk", PK, primary_key=True, autoincrement=True),
    Column("program_id", ID, ForeignKey("programs.id"), nullable=False),
    Column("organization", String(300), nullable=False),
    Column("patient_id", ID, nullable=False),
    Column("resource_type", String(40), nullable=False),
    Column("source_id", ID, nullable=True),
    Column("starts", Date, nullable=True),
    Column("ends", Date, nullable=True),
    Column("origin_kind", String(40), nullable=False),
    Column("origin_id", ID, nullable=False),
    Index(None, "program_id", "organization", "patient_id", "resource_type"),
    Index(None, "origin_kind", "origin_id"),
)

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

# --- Console (issue 20): staff accounts, server-side sessions, OpenID Connect sign-ins in flight ------------
# A console user: a local account (argon2 hash; none when the user signs in through OpenID Connect only) with
# one role, in one program; a peer specialist's account names their specialist record (their caseload).
# failed_attempts and locked_until carry the lockout. oidc_subject / email match an OIDC sign-in to the account.
console_users = Table(
    "console_users",
    metadata,
    Column("pk", PK, primary_key=True, autoincrement=True),
    Column("id", ID, nullable=False, unique=True),
    Column("program_id", ID, ForeignKey("programs.id"), nullable=False),
    Column("username", String(100), nullable=False, unique=True),
    Column("role", String(20), nullable=False),
    Column("specialist_id", ID, ForeignKey("specialists.id"), nullable=True),
    Column("password_hash", String(200), nullable=True),
    Column("email", String(300), nullable=True, index=True),
    Column("oidc_subject", String(300), nullable=True, unique=True),
    Column("disabled", Boolean, nullable=False, default=False),
    Column("failed_attempts", Integer, nullable=False, default=0),
    Column("locked_until", UTCDateTime, nullable=True),
    Column("last_sign_in_at", UTCDateTime, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

# A signed-in session: the cookie holds a random value, the table its SHA-256 (a stolen table signs no one in).
console_sessions = Table(
    "console_sessions",
    metadata,
    Column("pk", PK, primary_key=True, autoincrement=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("user_pk", PK, ForeignKey("console_users.pk", ondelete="CASCADE"), nullable=False, index=True),
    Column("method", String(10), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_seen_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False, index=True),
)

# An OpenID Connect sign-in between the redirect to the issuer and its callback: the state's SHA-256, the
# nonce and the PKCE code verifier, where to go after, and when it began (a short time to come back).
console_oidc_states = Table(
    "console_oidc_states",
    metadata,
    Column("pk", PK, primary_key=True, autoincrement=True),
    Column("state_hash", String(64), nullable=False, unique=True),
    Column("nonce", String(100), nullable=False),
    Column("code_verifier", String(200), nullable=False),
    Column("next_url", String(500), nullable=False),
    Column("created_at", UTCDateTime, nullable=False, index=True),
)

# Spreadsheet import (service.imports): which row of a program's spreadsheet made which record, so a
# re-import of the same rows creates nothing twice. ``external_id`` is the file's own row id (no PHI by
# rule of the template); ``kind`` the import kind (participants, specialists, sessions, session-notes).
import_rows = Table(
    "import_rows",
    metadata,
    Column("program_id", ID, ForeignKey("programs.id"), primary_key=True),
    Column("kind", String(20), primary_key=True),
    Column("external_id", String(64), primary_key=True),
    Column("record_id", ID, nullable=False),
    Column("imported_at", UTCDateTime, nullable=False),
)
