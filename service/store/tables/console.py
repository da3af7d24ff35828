"""The console: staff accounts, server-side sessions, OpenID Connect sign-ins in flight; spreadsheet import rows."""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    ForeignKey,
    Integer,
    String,
    Table,
)

from ..types import UTCDateTime
from .base import ID, PK, metadata

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
