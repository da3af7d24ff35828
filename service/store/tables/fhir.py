"""The FHIR projection (resources, versions, search index) and what inbound FHIR left behind."""

from __future__ import annotations

from sqlalchemy import (
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    UniqueConstraint,
    text,
)

from ..types import UTCDateTime
from .base import ID, PK, metadata

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
    Column("resource_pk", PK, ForeignKey("fhir_resources.pk", ondelete="CASCADE"), nullable=False),
    Column("program_id", ID, nullable=False),
    Column("resource_type", String(40), nullable=False),
    Column("param", String(40), nullable=False),
    Column("token", String(300), nullable=True),
    Column("moment", UTCDateTime, nullable=True),
    Index(None, "program_id", "resource_type", "param", "token"),
    # PostgreSQL: only the rows that hold a date (a date criterion never matches the others), and resource_pk
    # INCLUDEd: a criterion's matching resources read from the index alone (migration 0019)
    Index(
        None,
        "program_id",
        "resource_type",
        "param",
        "moment",
        postgresql_include=["resource_pk"],
        postgresql_where=text("moment IS NOT NULL"),
    ),
    Index(None, "resource_pk", "param"),  # a resource's rows of one parameter (EXISTS, _include); migration 0017
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
