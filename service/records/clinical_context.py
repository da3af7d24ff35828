"""A referral's clinical context, kept: the supporting resources a clinic sent with its referral.

``keep`` stores each resource (already validated, its id assigned and its references rewritten by
``mappings.clinical_context``) in ``clinical_context``, one row per (referral, type, the clinic's key
for it); a resend with the same content changes nothing. Then the change hub projects them into
``fhir_resources`` (source: the referral, so the referral's data boundary covers them) and re-maps
the referral's ServiceRequest, which links them (reasonReference, supportingInfo).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import orjson
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from service.fhir.context_rows import REASON, SUPPORTING, ContextResource, of_referral
from service.store.tables import clinical_context

from .changes import record_changed

KIND = "clinical_context"
__all__ = ["KIND", "REASON", "SUPPORTING", "ContextChange", "ContextResource", "keep", "of_referral"]


@dataclass(frozen=True)
class ContextChange:
    """What the change hub is told: the referral whose clinical context changed."""

    referral_id: str

    @property
    def id(self) -> str:
        return self.referral_id


async def keep(
    conn: AsyncConnection, program_id: str, referral_id: str, resources: list[ContextResource], now: datetime
) -> list[bool]:
    """Store (or refresh) the referral's supporting resources: for each, whether it is new."""
    c = clinical_context.c
    changed = False
    created: list[bool] = []
    for item in resources:
        body = orjson.dumps(item.body)
        row = (
            await conn.execute(
                select(c.pk, c.body, c.role).where(
                    c.program_id == program_id,
                    c.referral_id == referral_id,
                    c.resource_type == item.resource_type,
                    c.clinic_key == item.clinic_key,
                )
            )
        ).first()
        if row is None:
            await conn.execute(
                insert(clinical_context).values(
                    program_id=program_id,
                    referral_id=referral_id,
                    resource_type=item.resource_type,
                    clinic_key=item.clinic_key,
                    resource_id=item.resource_id,
                    role=item.role,
                    body=body,
                    created_at=now,
                    updated_at=now,
                )
            )
            changed = True
        created.append(row is None)
        if row is not None and (bytes(row.body) != body or row.role != item.role):
            await conn.execute(
                update(clinical_context).where(c.pk == row.pk).values(body=body, role=item.role, updated_at=now)
            )
            changed = True
    if changed:
        await record_changed(conn, program_id, KIND, ContextChange(referral_id), now)
    return created
