"""An EHR connection's life after `ehr add`: its settings changed, switched off and on, removed, and
what PeerLink believes the EHR holds forgotten so that it is delivered again (resync). The CLI and the
admin API call these; each change is audited here, once, whoever asked.

- disabled: no new change is queued for it (``records.outbox_rows.enqueue`` selects enabled connections only) and
  its queued rows are not claimed (``outbox.claim``); they keep their place and flow once enabled.
- removed: refused while a worker is delivering to it (disable it first, then remove), and while
  changes wait for it unless ``force``; forced, the waiting changes become dead letters ("connection
  removed"), kept and listed, never silently dropped. Its record of what the EHR holds (ehr_resources)
  and of the referrals it polled (ehr_referrals) is deleted: a connection later added under the same
  name, perhaps at another EHR, must not believe that EHR holds anything. Finished outbox rows stay as
  history; the audit log keeps every delivery.
- resync: forget what the EHR is believed to hold (all of it, or what was delivered since a moment),
  then backfill: every record it pushes is queued, and delivery skips only what is still believed
  held. Deterministic ids (PUT [type]/[our id], or conditional create on our identifier) make the
  resend idempotent at the EHR.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from service.audit import AuditRecord, write
from service.domain.errors import Conflict, NotFound, RuleViolation
from service.store import RecordRepository
from service.store import kinds as k
from service.store.tables import ehr_connections, ehr_referrals, ehr_resources, outbox

from . import connections
from . import outbox as queue
from .connections import EhrConnection

REMOVED = "the connection was removed"


@dataclass(frozen=True)
class Actor:
    """Who changes a connection, as the audit log records it."""

    client_id: str | None
    program_id: str | None = None
    """The admin's program: a connection of another program is not found. None: any (the CLI)."""
    organization: str | None = None
    address: str | None = None


async def _connection(conn: AsyncConnection, name: str, actor: Actor) -> EhrConnection:
    found = await connections.find(conn, name)
    if found is None or (actor.program_id is not None and found.program_id != actor.program_id):
        raise NotFound("no EHR connection with that name")
    return found


async def _audit(
    conn: AsyncConnection, actor: Actor, connection: EhrConnection, subtype: str, action: str, detail: dict[str, Any]
) -> None:
    record = AuditRecord(
        "admin",
        subtype,
        action,  # type: ignore[arg-type]
        "0",
        client_id=actor.client_id,
        organization=actor.organization,
        program_id=connection.program_id,
        address=actor.address,
        detail={"connection": connection.name, **detail},
    )
    await write(conn, record)


async def change(
    conn: AsyncConnection, name: str, changes: dict[str, Any], now: datetime, actor: Actor
) -> EhrConnection:
    """New settings (404 unknown name, 422 bad fields); the audit names the fields, never key material."""
    await _connection(conn, name, actor)
    updated = await connections.change(conn, name, changes, now)
    await _audit(conn, actor, updated, "ehr-update", "U", {"changed": sorted(changes)})
    return updated


async def retry_bundles(conn: AsyncConnection, name: str, now: datetime, actor: Actor) -> EhrConnection:
    """Clear a connection's recorded refusal of transaction Bundles: its next batch tries a Bundle again
    (and, refused again, goes as single writes and is recorded again)."""
    current = await _connection(conn, name, actor)
    updated = await connections.clear_bundle_refusal(conn, name, now)
    refused = current.bundles_refused_at.isoformat() if current.bundles_refused_at else None
    await _audit(conn, actor, updated, "ehr-update", "U", {"changed": ["bundles"], "refused_at": refused})
    return updated


async def set_enabled(conn: AsyncConnection, name: str, enabled: bool, now: datetime, actor: Actor) -> EhrConnection:
    """Switch a connection off (nothing new queued, nothing claimed) or on again: its waiting rows are
    due at once (a backoff from before it was switched off does not hold them back)."""
    await _connection(conn, name, actor)
    updated = await connections.set_enabled(conn, name, enabled, now)
    if enabled:
        q = outbox.c
        await conn.execute(update(outbox).where(q.connection == name, q.state == "pending").values(next_attempt_at=now))
    await _audit(conn, actor, updated, "ehr-enable" if enabled else "ehr-disable", "U", {})
    return updated


async def waiting(conn: AsyncConnection, name: str) -> dict[str, int]:
    """The connection's unfinished outbox rows by state (pending, sending)."""
    q = outbox.c
    rows = await conn.execute(
        select(q.state, func.count()).where(q.connection == name, q.state.in_(("pending", "sending"))).group_by(q.state)
    )
    return {state: count for state, count in rows}


async def remove(conn: AsyncConnection, name: str, force: bool, now: datetime, actor: Actor) -> dict[str, Any]:
    """Remove a connection (see the module's docstring). 409 while a worker delivers to it, or while
    changes wait for it without ``force``."""
    connection = await _connection(conn, name, actor)
    unfinished = await waiting(conn, name)
    if unfinished.get("sending"):
        raise Conflict(
            f"a worker is delivering {unfinished['sending']} change(s) to {name} now: disable it, then remove it"
        )
    pending = unfinished.get("pending", 0)
    if pending and not force:
        raise Conflict(
            f"{pending} change(s) wait for {name}: let them flow, or remove with force "
            "(they become dead letters, listed and replayable)"
        )
    q = outbox.c
    dead = await conn.execute(
        update(outbox)
        .where(q.connection == name, q.state == "pending")
        .values(state="dead", finished_at=now, last_error=REMOVED)
    )
    forgotten = await conn.execute(delete(ehr_resources).where(ehr_resources.c.connection == name))
    await conn.execute(delete(ehr_referrals).where(ehr_referrals.c.connection == name))
    await conn.execute(delete(ehr_connections).where(ehr_connections.c.name == name))
    result = {"removed": name, "dead_lettered": dead.rowcount or 0, "forgotten": forgotten.rowcount or 0}
    await _audit(
        conn,
        actor,
        connection,
        "ehr-remove",
        "D",
        {"dead_lettered": result["dead_lettered"], "forgotten": result["forgotten"]},
    )
    return result


def parse_since(text: str | None) -> datetime | None:
    """An ISO date or date-time (UTC unless it says otherwise), or a RuleViolation (422)."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise RuleViolation("since: an ISO date (2026-12-01) or date-time (2026-12-01T09:00:00Z)") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


async def resync(
    conn: AsyncConnection, name: str, since: datetime | None, now: datetime, actor: Actor
) -> dict[str, int]:
    """Forget what the EHR is believed to hold (what was delivered since ``since``, or all of it) and
    queue every record the connection pushes again (``outbox.backfill``). 409 for a disabled connection."""
    connection = await _connection(conn, name, actor)
    if not connection.enabled:
        raise Conflict(f"connection {name} is disabled: enable it first")
    e = ehr_resources.c
    condition = [e.connection == name]
    if since is not None:
        condition.append(e.delivered_at >= since)
    forgotten = (await conn.execute(delete(ehr_resources).where(*condition))).rowcount or 0
    program = await RecordRepository(k.PROGRAMS).get(conn, None, connection.program_id)
    queued = await queue.backfill(conn, program, connection, now)
    detail: dict[str, Any] = {"forgotten": forgotten, "queued": queued}
    if since is not None:
        detail["since"] = since.isoformat()
    await _audit(conn, actor, connection, "ehr-resync", "U", detail)
    return {"forgotten": forgotten, "queued": queued}
