"""Security: SMART backend-services clients, seen client assertions, access grants."""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Date,
    ForeignKey,
    Index,
    String,
    Table,
    UniqueConstraint,
)

from ..types import JsonDocument, UTCDateTime
from .base import ID, PK, metadata

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
    # what the boundary's EXISTS filters on is in the index too (PostgreSQL): an index-only scan; migration 0018
    Index(
        None,
        "program_id",
        "organization",
        "patient_id",
        "resource_type",
        postgresql_include=["starts", "ends", "source_id", "origin_kind"],
    ),
    Index(None, "origin_kind", "origin_id"),
)
