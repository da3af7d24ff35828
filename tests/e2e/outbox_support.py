"""Shared by the worker tests and benches: a database in an event loop of its own, the outbox's
states, and sessions with signed notes of the demo participants (each queued for the EHR)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from service.domain import NoteFields, PeerEncounterFields
from service.records import operations
from service.records import types as rt
from service.records.programs import get_by_code
from service.store import Database, RecordRepository
from service.store import kinds as k
from service.store.tables import outbox


def on(url: str, work: Any) -> Any:
    """Run ``work(database)`` in an event loop of its own (a pool belongs to the loop it was made in)."""

    async def run() -> Any:
        database = Database(url)
        try:
            return await work(database)
        finally:
            await database.dispose()

    return asyncio.run(run())


async def states(database: Database) -> dict[str, int]:
    """Outbox rows per state."""
    async with database.read() as conn:
        rows = await conn.execute(select(outbox.c.state, func.count()).group_by(outbox.c.state))
        return {state: count for state, count in rows}


async def sessions_with_notes(database: Database, count: int, *, per_transaction: bool = True) -> None:
    """``count`` finished sessions of the demo participants, each with a signed note: 2 x count changes.
    What was queued before is cleared, so only these are counted."""
    async with database.transaction() as conn:
        program = await get_by_code(conn, "demo")
        participants = (await RecordRepository(k.PARTICIPANTS).list(conn, program.id, limit=500)).items
        specialist = (await RecordRepository(k.SPECIALISTS).list(conn, program.id, limit=1)).items[0]
        await conn.execute(outbox.delete())
    start = datetime.now(UTC) - timedelta(days=60)
    for i in range(count):
        async with database.transaction() as conn:
            session = await operations.create(
                conn,
                program.id,
                rt.ENCOUNTERS,
                PeerEncounterFields.model_validate(
                    {
                        "participant_id": participants[i % len(participants)].id,
                        "specialist_id": specialist.id,
                        "start": start + timedelta(hours=i),
                        "end": start + timedelta(hours=i, minutes=40),
                        "modality": "phone",
                        "support_categories": ["emotional"],
                        "status": "finished",
                    }
                ),
            )
            note = await operations.create(
                conn,
                program.id,
                rt.NOTES,
                NoteFields(encounter_id=session.id, author_id=specialist.id, text=f"Check-in call number {i}."),
            )
            await operations.sign_note(conn, program.id, note.id, expected_version=None)
