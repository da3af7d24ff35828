"""The resources a batch of changes sends, read for one connection: the changes' own resources, then
each level of what they reference (Patient, Practitioner, Organization, Encounter), in the order an
EHR needs them. The generic mapping sends the projection's stored bytes; a profile overlay maps the
source records again. Every read of the projection goes through ``service.fhir.repository``."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from service.domain import Program
from service.fhir import repository
from service.fhir.render import fhir_resources
from service.store import RecordRepository
from service.store import kinds as k
from service.store.repository import StoredKind

from .connections import EhrConnection
from .outgoing import DEPENDENCY_TYPES, PRIMARY_TYPES, Outgoing, in_order, is_dependency


def merged(batches: list[list[Outgoing]]) -> list[Outgoing]:
    """The resources of several changes, each once (as a change's own resource where one change has it)."""
    found: dict[str, Outgoing] = {}
    for items in batches:
        for item in items:
            if item.reference not in found or (item.primary and not found[item.reference].primary):
                found[item.reference] = item
    return in_order(found.values())


def still_missing(level: set[str], outgoing: dict[str, Outgoing]) -> set[str]:
    """The dependencies a level of references names that are not gathered yet."""
    return {r for r in level if r not in outgoing and is_dependency(r)}


async def _dependency(
    conn: AsyncConnection, program: Program, connection: EhrConnection, reference: str
) -> list[dict[str, Any]]:
    """A referenced resource mapped with the connection's overlay (the resources of its source record)."""
    resource_type, resource_id = reference.split("/")
    source = await repository.source(conn, program.id, resource_type, resource_id)
    if source is None:
        return []
    return await fhir_resources(conn, program, source[0], source[1], connection.profile)


async def collect(
    conn: AsyncConnection,
    program: Program,
    connection: EhrConnection,
    kind: str,
    record_id: str,
    seen: dict[str, list[dict[str, Any]]] | None = None,
) -> list[Outgoing]:
    """The change's resources and what they reference, mapped for the connection (with its overlay),
    in the order an EHR needs them. ``seen`` remembers dependencies across the changes of a batch."""
    if connection.profile == "generic":
        return await collect_many(conn, program, connection, [(kind, record_id)])
    seen = {} if seen is None else seen
    mapped = await fhir_resources(conn, program, kind, record_id, connection.profile)
    outgoing = {f"{r['resourceType']}/{r['id']}": Outgoing(r, True) for r in mapped}
    pending = [ref for o in list(outgoing.values()) for ref in o.references]
    while pending:
        reference = pending.pop()
        if reference in outgoing or not is_dependency(reference):
            continue
        if reference not in seen:
            seen[reference] = await _dependency(conn, program, connection, reference)
        for resource in seen[reference]:
            key = f"{resource['resourceType']}/{resource['id']}"
            if key not in outgoing and resource["resourceType"] in DEPENDENCY_TYPES:
                outgoing[key] = Outgoing(resource, False)
                pending += outgoing[key].references
    return in_order(outgoing.values())


async def collect_many(
    conn: AsyncConnection, program: Program, connection: EhrConnection, changes: list[tuple[str, str]]
) -> list[Outgoing]:
    """``collect`` for a batch of (kind, record id), a few statements in all when the EHR takes the
    generic mapping (the projection's bytes): the changes' resources, then each level of references."""
    if connection.profile != "generic":
        seen: dict[str, list[dict[str, Any]]] = {}
        return merged([await collect(conn, program, connection, kind, rid, seen) for kind, rid in changes])
    wanted = {(kind, record_id) for kind, record_id in changes}
    outgoing: dict[str, Outgoing] = {}
    for row in await repository.resources_of_sources(conn, program.id, wanted):
        if row.resource_type in PRIMARY_TYPES.get(row.source_kind, ()):
            item = Outgoing.stored(row.resource_type, row.resource_id, row.body, row.content_hash, True)
            outgoing[item.reference] = item
    level = {ref for o in outgoing.values() for ref in o.references}
    while missing := still_missing(level, outgoing):
        level = set()
        for row in await repository.resources_by_reference(conn, program.id, missing):
            key = f"{row.resource_type}/{row.resource_id}"
            if key not in outgoing:
                outgoing[key] = Outgoing.stored(row.resource_type, row.resource_id, row.body, row.content_hash, False)
                level.update(outgoing[key].references)
    return in_order(outgoing.values())


OUTPUT_SOURCES: dict[str, tuple[str, StoredKind[Any]]] = {
    "Encounter": ("encounter", k.ENCOUNTERS),
    "Observation": ("assessment", k.ASSESSMENTS),
}
"""What a referral's Task lists as outputs: reference type -> (outbox kind, the record kind behind it)."""


async def output_of(conn: AsyncConnection, program_id: str, reference: str) -> tuple[str, str, str] | None:
    """(outbox kind, record id, participant id) of the record behind one of our Task's outputs (a
    delivered session, an outcome score), from its FHIR reference; None for anything else."""
    resource_type, _, resource_id = reference.partition("/")
    wanted = OUTPUT_SOURCES.get(resource_type)
    source = await repository.source(conn, program_id, resource_type, resource_id) if wanted else None
    if wanted is None or source is None or source[0] != wanted[0]:
        return None
    found = await RecordRepository(wanted[1]).find(conn, program_id, source[1])
    return (wanted[0], found.id, found.participant_id) if found is not None else None
