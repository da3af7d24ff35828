"""The audit chain as migration 0005 knew it, frozen: the chain lock's key, the genesis value, a
record's canonical form and hash, and its search-index rows. Copied from service.audit (chain and
append) when 0005 was written, so the migration never imports the runtime audit code and keeps
doing what it did when the runtime changes. tests/audit/test_migration.py checks that the runtime
still hashes and indexes as this copy does: a change of the runtime chain must be a conscious one
(a new migration re-chains, this file stays).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

CHAIN_LOCK = 0x5045_4552_4C4B_4155  # "PEERLKAU": the PostgreSQL advisory lock of the audit chain
GENESIS = "0" * 64
"""The predecessor hash of record 1."""

HASHED_COLUMNS = (
    "seq",
    "recorded",
    "program_id",
    "type",
    "subtype",
    "action",
    "outcome",
    "client_id",
    "organization",
    "address",
    "detail",
    "prev_hash",
)
QUERY_SUBTYPES = frozenset({"search", "peer-list"})


def canonical(row: Mapping[str, Any]) -> bytes:
    """orjson, keys sorted at every level, no spaces, over every column but hash; ``recorded`` as UTC
    ``YYYY-MM-DDTHH:MM:SS.ffffffZ``."""
    document = {name: row[name] for name in HASHED_COLUMNS}
    recorded = document["recorded"]
    if isinstance(recorded, datetime):
        document["recorded"] = recorded.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return orjson.dumps(document, option=orjson.OPT_SORT_KEYS)


def record_hash(row: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the canonical form."""
    return hashlib.sha256(canonical(row)).hexdigest()


def patient_id(reference: str) -> str:
    """``Patient/x``, ``https://.../Patient/x`` or ``x`` -> ``x``."""
    if "/" not in reference:
        return reference
    head, slash, tail = reference.rstrip("/").rpartition("/")
    if slash and head.rsplit("/", 1)[-1] == "Patient":
        return tail
    return reference


def entities_of(detail: Mapping[str, Any], subtype: str = "") -> list[tuple[str, str]]:
    """The search-index rows of a record: ("patient", id) for its detail's ``patients`` and each
    ``Patient/x`` among its ``entities``; ("entity", "Type/id") for its other entities, unless the
    record is a search."""
    found: dict[tuple[str, str], None] = {}
    patients = detail.get("patients")
    entities = detail.get("entities")
    for value in patients if type(patients) is list else ():
        if type(value) is str and value:
            found[("patient", patient_id(value)[:200])] = None
    query = subtype in QUERY_SUBTYPES
    for value in entities if type(entities) is list else ():
        if type(value) is str and value:
            if value.startswith("Patient/"):
                found[("patient", value[8:200])] = None
            elif not query:
                found[("entity", value[:200])] = None
    return list(found)
