"""The change hub: everything that follows a change of one record, in the change's transaction.

Every write of ``service.records`` ends here. In order: the data boundaries the change opens or
closes (``service.auth.boundary``), the outbox rows for the EHRs that should see it
(``outbox_rows``), the FHIR projection of every resource it touches (``service.fhir.projection``), and the events of
the subscriptions the projected resources match (``subscription_events``).
All of it commits with the record or not at all; nothing here calls up into the exchange or the API.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from service.auth import boundary
from service.domain import Program
from service.fhir import projection
from service.store import RecordRepository
from service.store import kinds as k

from . import outbox_rows, subscription_events


async def record_changed(conn: AsyncConnection, program_id: str, kind: str, record: Any, now: datetime) -> None:
    """After ``record`` (of the stored kind ``kind``) was inserted or updated in this transaction."""
    program: Program = await RecordRepository(k.PROGRAMS).get(conn, None, program_id)
    await boundary.sync(conn, program, kind, record)
    await outbox_rows.enqueue(conn, program, kind, record, now)
    await projection.refresh(conn, program, kind, record, now)
    await subscription_events.record(conn, program.id, now)  # on the projected resources, just stored
