"""The ledger of imported rows (table ``import_rows``): (program, kind, external_id) -> the record made."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from service.store.tables import import_rows


async def imported(conn: AsyncConnection, program_id: str, kind: str, external_ids: Iterable[str]) -> dict[str, str]:
    """external_id -> record id, for those of ``external_ids`` already imported as ``kind``."""
    wanted = sorted(set(external_ids))
    found: dict[str, str] = {}
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        result = await conn.execute(
            select(import_rows.c.external_id, import_rows.c.record_id).where(
                import_rows.c.program_id == program_id,
                import_rows.c.kind == kind,
                import_rows.c.external_id.in_(chunk),
            )
        )
        found.update({row.external_id: row.record_id for row in result})
    return found


async def remember(
    conn: AsyncConnection, program_id: str, kind: str, external_id: str, record_id: str, at: datetime
) -> None:
    await conn.execute(
        import_rows.insert().values(
            program_id=program_id, kind=kind, external_id=external_id, record_id=record_id, imported_at=at
        )
    )
