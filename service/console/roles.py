"""The console's roles, and the groups of them the screens allow."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    PROGRAM_ADMIN = "program-admin"
    """Runs the program: every program screen, and the users."""
    SUPERVISOR = "supervisor"
    """Supervises the peer specialists: every participant of the program."""
    PEER_SPECIALIST = "peer-specialist"
    """A peer specialist (the account names their specialist record): their own caseload only."""
    INTEGRATOR = "integrator"
    """Connections and technical state; never notes or other clinical content."""
    AUDITOR = "auditor"
    """Reads what the program staff read; changes nothing (every POST but sign-out is refused)."""


ALL_ROLES = frozenset(Role)
PROGRAM_STAFF = frozenset({Role.PROGRAM_ADMIN, Role.SUPERVISOR, Role.PEER_SPECIALIST})
"""Who works with participants (a peer specialist within their caseload)."""
CLINICAL_READERS = PROGRAM_STAFF | {Role.AUDITOR}
"""Who may see participants' data, notes included (never the integrator)."""
TECHNICAL = frozenset({Role.INTEGRATOR, Role.PROGRAM_ADMIN, Role.AUDITOR})
"""Who may see connections, clients, keys and the audit chain's state."""
ADMINS = frozenset({Role.PROGRAM_ADMIN})
