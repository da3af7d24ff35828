"""What an EHR connection may push: the names the CLI and the admin API take, and the outbox kind each
stands for. A module of its own with no imports, so that ``peerlink`` can name them in its help text
without loading the record layer (``outbox_rows`` writes the rows)."""

from __future__ import annotations

PUSH_KINDS: dict[str, str] = {
    "encounters": "encounter",
    "notes": "note",
    "care-teams": "care-team",
    "referral-status": "referral",
    "assessments": "assessment",
}
"""What a connection may push (CLI/API name) -> the outbox kind."""
