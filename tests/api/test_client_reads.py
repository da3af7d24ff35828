"""The registration a token's client has is read once per CLIENT_CACHE_SECONDS, by one read however
many requests of that client arrive when it is due; forgetting it (a disable) makes the next request read it."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import event, update

from service.app import create_app
from service.store.tables import auth_clients
from tests.conftest import register_client


def _count_client_reads(database: Any) -> list[str]:
    seen: list[str] = []
    engine = database.loop_reader or database.read_engine.sync_engine

    @event.listens_for(engine, "before_cursor_execute")
    def _seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "auth_clients" in statement:
            seen.append(statement)

    return seen


async def test_concurrent_requests_share_one_registration_read(settings, database, program):
    await register_client(database, program, "busy", "system/Patient.rs")
    security = create_app(settings, database).state.security
    reads = _count_client_reads(database)
    found = await asyncio.gather(*(security.client("busy") for _ in range(20)))
    assert {f.client_id for f in found} == {"busy"} and len(reads) == 1
    await security.client("busy")
    assert len(reads) == 1  # cached
    security.forget("busy")
    async with database.transaction() as conn:
        await conn.execute(update(auth_clients).where(auth_clients.c.client_id == "busy").values(disabled=True))
    assert (await security.client("busy")).disabled and len(reads) == 2
