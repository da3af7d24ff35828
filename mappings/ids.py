"""Deterministic FHIR ids and business identifiers: the same record always maps to the same id,
so a resend is idempotent (PUT by id, conditional create on identifier)."""

from __future__ import annotations

import functools
import uuid


@functools.lru_cache(maxsize=64)
def _namespace(identifier_system: str) -> uuid.UUID:
    return uuid.uuid5(uuid.NAMESPACE_URL, identifier_system)


@functools.lru_cache(maxsize=32_768)
def fhir_id(identifier_system: str, kind: str, domain_id: str) -> str:
    """uuid5 of the program's identifier system, the record kind and the domain id (a pure function,
    asked for the same records again and again: cached)."""
    return str(uuid.uuid5(_namespace(identifier_system), f"{kind}/{domain_id}"))


def identifier_system(program_system: str, kind: str) -> str:
    """The system under which the program publishes business identifiers of one record kind."""
    return f"{program_system.rstrip('/')}/{kind}"
