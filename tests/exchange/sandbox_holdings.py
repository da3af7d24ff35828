"""What the sandbox EHR holds after a delivery, and what PeerLink believes it holds."""

from __future__ import annotations

from sqlalchemy import select

from service.store.tables import ehr_resources
from tests.sandbox.support import Harness


async def delivered(database) -> dict[str, str]:
    """Our reference -> the EHR's id, of everything PeerLink believes the EHR holds."""
    e = ehr_resources.c
    async with database.read() as conn:
        rows = await conn.execute(select(e.resource_type, e.resource_id, e.ehr_id).where(e.connection == "hospital"))
        return {f"{r.resource_type}/{r.resource_id}": f"{r.resource_type}/{r.ehr_id}" for r in rows}


def versions(sandbox: Harness, references: list[str]) -> dict[str, int | None]:
    """The sandbox's current version of each resource (None: it does not hold it)."""
    found: dict[str, int | None] = {}
    for reference in references:
        resource_type, resource_id = reference.split("/", 1)
        current = sandbox.sandbox.store.current(resource_type, resource_id)
        found[reference] = current.version_id if current is not None and current.resource is not None else None
    return found
