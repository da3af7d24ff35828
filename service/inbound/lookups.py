"""What inbound writes look up: the records behind served resources, conditional-create matches, and
the external identifiers (a clinic's order numbers, a hospital's MRNs) claimed for records."""

from __future__ import annotations

import re
from datetime import datetime
from urllib.parse import parse_qsl

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from service.fhir import repository
from service.fhir.search_params import SEARCH_PARAMS, ParamType
from service.store.tables import external_identifiers

from .errors import IdentifierClash, bad_request

_LITERAL = re.compile(r"(?:^|/)(?P<type>[A-Za-z]+)/(?P<id>[A-Za-z0-9\-.]{1,64})(?:/_history/[^/]+)?$")
_CONDITIONAL_TYPES = (ParamType.TOKEN, ParamType.REFERENCE)


async def source_of(conn: AsyncConnection, program_id: str, resource_type: str, resource_id: str) -> str | None:
    """The domain id of the record a served resource comes from."""
    return await repository.source_of(conn, program_id, resource_type, resource_id)


def literal(reference: str) -> tuple[str, str] | None:
    """(type, id) of a literal reference, relative or absolute, with or without a version."""
    match = _LITERAL.search(reference)
    return None if match is None else (match["type"], match["id"])


async def record_for(conn: AsyncConnection, program_id: str, reference: str, resource_type: str) -> str | None:
    """The domain id behind a literal reference (relative or absolute) to a resource we serve."""
    found = literal(reference)
    if found is None or found[0] != resource_type:
        return None
    return await source_of(conn, program_id, resource_type, found[1])


async def records_with_identifier(conn: AsyncConnection, program_id: str, resource_type: str, token: str) -> list[str]:
    """Domain ids of the served resources with this identifier (``system|value``)."""
    return await repository.sources_with_token(conn, program_id, resource_type, "identifier", token)


async def claimed(conn: AsyncConnection, program_id: str, kind: str, system: str, value: str) -> str | None:
    t = external_identifiers.c
    row = (
        await conn.execute(
            select(t.record_id).where(t.program_id == program_id, t.kind == kind, t.system == system, t.value == value)
        )
    ).first()
    return None if row is None else str(row.record_id)


async def claim(
    conn: AsyncConnection, program_id: str, kind: str, system: str, value: str, record_id: str, now: datetime
) -> None:
    """Record that (system, value) names this record; IdentifierClash when a concurrent one got there first."""
    try:
        await conn.execute(
            insert(external_identifiers).values(
                program_id=program_id, kind=kind, system=system, value=value, record_id=record_id, created_at=now
            )
        )
    except IntegrityError:
        raise IdentifierClash(kind) from None


def conditional_criteria(resource_type: str, query: str, element: str) -> list[tuple[str, list[str]]]:
    """An If-None-Exist query as (parameter, tokens) pairs: token and reference parameters
    (identifier=system|value, patient=Patient/x, ...) and _id; anything else is a BadRequest."""
    query = query.strip()
    if "?" in query:
        query = query.split("?", 1)[1]
    params = parse_qsl(query, keep_blank_values=True)
    if not params:
        raise bad_request(element, "give search parameters, such as identifier=system|value")
    supported = SEARCH_PARAMS.get(resource_type, {})
    criteria: list[tuple[str, list[str]]] = []
    for name, value in params:
        values = [v[:300] for v in value.split(",") if v]
        if not values:
            raise bad_request(element, f"{name[:40]} has no value")
        if name != "_id":
            param = supported.get(name)
            if param is None or param.type not in _CONDITIONAL_TYPES:
                usable = ", ".join(["_id", *(n for n, p in supported.items() if p.type in _CONDITIONAL_TYPES)])
                raise bad_request(element, f"{name[:40]!r} cannot be used here; use {usable}")
        criteria.append((name, values))
    return criteria


async def conditional_matches(
    conn: AsyncConnection, program_id: str, resource_type: str, query: str, element: str
) -> list[str]:
    """Ids of the resources an If-None-Exist query matches (at most two: enough to tell 0, 1, many)."""
    criteria = conditional_criteria(resource_type, query, element)
    return await repository.ids_matching_tokens(conn, program_id, resource_type, criteria, limit=2)
