"""The rows of a referral's kept clinical context (read by the projection; written by
``clinical_context.keep``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from service.store.tables import clinical_context

REASON = "reason"
SUPPORTING = "supporting"


@dataclass(frozen=True)
class ContextResource:
    """One supporting resource as PeerLink keeps it."""

    resource_type: str
    clinic_key: str
    resource_id: str
    role: str  # REASON (named by ServiceRequest.reasonReference) or SUPPORTING
    body: dict[str, Any]


async def of_referral(conn: AsyncConnection, program_id: str, referral_id: str) -> list[ContextResource]:
    """The referral's kept supporting resources, in the order they were first kept."""
    c = clinical_context.c
    rows = await conn.execute(
        select(c.resource_type, c.clinic_key, c.resource_id, c.role, c.body)
        .where(c.program_id == program_id, c.referral_id == referral_id)
        .order_by(c.pk)
    )
    return [
        ContextResource(row.resource_type, row.clinic_key, row.resource_id, row.role, orjson.loads(row.body))
        for row in rows
    ]
