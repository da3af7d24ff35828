"""Each EHR connection's health as the admin API and the console show it: queue depth, the oldest
waiting change, deliveries, retries, dead letters, the last success and token failures."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from service.store.tables import ehr_connections
from service.store.tables import outbox as outbox_table

from . import connections, outbox


async def connection_health(conn: AsyncConnection, program_id: str, now: datetime) -> dict[str, dict[str, Any]]:
    """Per connection of the program (by name): its numbers (see the admin API's /exchange/metrics)."""
    q = outbox_table.c
    found = await connections.list_all(conn, program_id)
    depth = await outbox.depth(conn)
    sums = select(q.connection, func.coalesce(func.sum(q.attempts), 0)).group_by(q.connection)
    retried = {name: total for name, total in await conn.execute(sums)}
    result: dict[str, dict[str, Any]] = {}
    for connection in found:
        states = depth.get(connection.name, {"states": {}, "oldest_waiting": None})
        oldest = states["oldest_waiting"]
        result[connection.name] = {
            "queue_depth": states["states"].get("pending", 0) + states["states"].get("sending", 0),
            "oldest_waiting_seconds": (now - oldest).total_seconds() if oldest else 0.0,
            "delivered": states["states"].get("delivered", 0),
            "retried": int(retried.get(connection.name, 0)),
            "dead_lettered": states["states"].get("dead", 0),
            "withheld": states["states"].get("withheld", 0),
            "last_success": None,
            "token_failures": 0,
            "bundles_refused": connection.bundles_refused_at is not None,
        }
    c = ehr_connections.c
    for name, last, failures in await conn.execute(select(c.name, c.last_success_at, c.token_failures)):
        if name in result:
            result[name]["last_success"] = last.isoformat() if last else None
            result[name]["token_failures"] = failures
    return result
