"""Admin API for the exchange: EHR connections, per-connection metrics, dead letters."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from service.api.access import AdminDep
from service.api.deps import DatabaseDep, ProgramDep
from service.audit import AuditRecord, write
from service.exchange import connections, lifecycle, outbox
from service.exchange.health import connection_health
from service.exchange.worker import Worker

router = APIRouter(prefix="/admin/v1", tags=["Admin"])
PUSH_HELP = f"What the connection pushes: any of {', '.join(connections.PUSH_KINDS)}."


class ConnectionFields(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    base_url: str = Field(max_length=500, description="The EHR's FHIR base URL.")
    client_id: str = Field(max_length=200)
    organization: str = Field(max_length=300, description="The hospital's identifier system|value, or its NPI.")
    key_file: str | None = Field(default=None, max_length=500, description="Path of the PEM private key.")
    key_env: str | None = Field(default=None, max_length=100, description="Or: variable holding the PEM.")
    kid: str | None = Field(default=None, max_length=200)
    alg: str = "RS384"
    scopes: str | None = Field(default=None, max_length=2000)
    profile: str = "generic"
    push: list[str] = Field(default_factory=lambda: ["encounters", "notes"], description=PUSH_HELP)
    poll_referrals: bool = False
    poll_seconds: int = 3600
    task_owner: str | None = Field(default=None, max_length=300)
    rate_per_second: int = Field(default=20, ge=1, le=1000)


def _audit(request: Request, access: Any, subtype: str, detail: dict[str, Any]) -> AuditRecord:
    return AuditRecord(
        "admin",
        subtype,
        "C",
        "0",
        client_id=access.client_id,
        program_id=access.program_id,
        address=request.client.host if request.client else None,
        detail=detail,
    )


@router.get("/ehr-connections", summary="EHR connections", operation_id="admin_list_ehr_connections")
async def list_connections(access: AdminDep, program: ProgramDep, database: DatabaseDep) -> list[dict[str, Any]]:
    async with database.read() as conn:
        return [c.public() for c in await connections.list_all(conn, program.id)]


@router.post(
    "/ehr-connections", status_code=201, summary="Add an EHR connection", operation_id="admin_add_ehr_connection"
)
async def add_connection(
    request: Request,
    body: ConnectionFields,
    access: AdminDep,
    program: ProgramDep,
    database: DatabaseDep,
    backfill: bool = Query(default=False, description="Queue every existing record the connection pushes."),
) -> dict[str, Any]:
    now = datetime.now(UTC)
    async with database.transaction() as conn:
        created = await connections.add(conn, program.id, body.model_dump(), now)
        queued = await outbox.backfill(conn, program, created, now) if backfill else 0
        await write(conn, _audit(request, access, "ehr-add", {"connection": created.name, "backfill": queued}))
    return {**created.public(), "queued": queued}


class ConnectionChanges(BaseModel):
    """What ``PATCH`` changes (only the fields given); a connection keeps its name."""

    model_config = ConfigDict(extra="forbid")

    base_url: str | None = Field(default=None, max_length=500, description="The EHR's FHIR base URL.")
    client_id: str | None = Field(default=None, max_length=200)
    organization: str | None = Field(default=None, max_length=300)
    key_file: str | None = Field(default=None, max_length=500, description="A new PEM private key file.")
    key_env: str | None = Field(default=None, max_length=100, description="Or: a variable holding the PEM.")
    kid: str | None = Field(default=None, max_length=200)
    alg: str | None = None
    scopes: str | None = Field(default=None, max_length=2000)
    profile: str | None = None
    push: list[str] | None = Field(default=None, description=PUSH_HELP)
    poll_referrals: bool | None = None
    poll_seconds: int | None = None
    task_owner: str | None = Field(default=None, max_length=300)
    rate_per_second: int | None = Field(default=None, ge=1, le=1000)


class Resync(BaseModel):
    model_config = ConfigDict(extra="forbid")

    since: str | None = Field(
        default=None, max_length=40, description="Only what was delivered since this ISO date or date-time."
    )


def _actor(request: Request, access: Any, program_id: str) -> lifecycle.Actor:
    address = request.client.host if request.client else None
    return lifecycle.Actor(access.client_id, program_id, access.organization, address)


@router.patch(
    "/ehr-connections/{name}", summary="Change an EHR connection's settings", operation_id="admin_update_ehr_connection"
)
async def update_connection(
    request: Request, name: str, body: ConnectionChanges, access: AdminDep, program: ProgramDep, database: DatabaseDep
) -> dict[str, Any]:
    changes = body.model_dump(exclude_unset=True)
    async with database.transaction() as conn:
        updated = await lifecycle.change(conn, name, changes, datetime.now(UTC), _actor(request, access, program.id))
    return updated.public()


async def _set_enabled(
    request: Request, name: str, enabled: bool, access: Any, program_id: str, database: DatabaseDep
) -> dict[str, Any]:
    actor = _actor(request, access, program_id)
    async with database.transaction() as conn:
        updated = await lifecycle.set_enabled(conn, name, enabled, datetime.now(UTC), actor)
    return updated.public()


@router.post(
    "/ehr-connections/{name}/disable",
    summary="Switch an EHR connection off (nothing new queued; what waits stays)",
    operation_id="admin_disable_ehr_connection",
)
async def disable_connection(
    request: Request, name: str, access: AdminDep, program: ProgramDep, database: DatabaseDep
) -> dict[str, Any]:
    return await _set_enabled(request, name, False, access, program.id, database)


@router.post(
    "/ehr-connections/{name}/enable",
    summary="Switch an EHR connection on again (what waited flows)",
    operation_id="admin_enable_ehr_connection",
)
async def enable_connection(
    request: Request, name: str, access: AdminDep, program: ProgramDep, database: DatabaseDep
) -> dict[str, Any]:
    return await _set_enabled(request, name, True, access, program.id, database)


@router.delete(
    "/ehr-connections/{name}", summary="Remove an EHR connection", operation_id="admin_remove_ehr_connection"
)
async def remove_connection(
    request: Request,
    name: str,
    access: AdminDep,
    program: ProgramDep,
    database: DatabaseDep,
    force: bool = Query(default=False, description="Also when changes wait for it: they become dead letters."),
) -> dict[str, Any]:
    async with database.transaction() as conn:
        return await lifecycle.remove(conn, name, force, datetime.now(UTC), _actor(request, access, program.id))


@router.post(
    "/ehr-connections/{name}/resync",
    summary="Forget what the EHR holds and deliver it again",
    operation_id="admin_resync_ehr_connection",
)
async def resync_connection(
    request: Request,
    name: str,
    access: AdminDep,
    program: ProgramDep,
    database: DatabaseDep,
    body: Resync | None = None,
) -> dict[str, int]:
    since = lifecycle.parse_since(body.since if body is not None else None)
    async with database.transaction() as conn:
        return await lifecycle.resync(conn, name, since, datetime.now(UTC), _actor(request, access, program.id))


@router.post("/ehr-connections/{name}/poll", summary="Poll the EHR for referrals now", operation_id="admin_poll_ehr")
async def poll_now(request: Request, name: str, access: AdminDep, database: DatabaseDep) -> dict[str, Any]:
    async with database.read() as conn:
        await connections.get(conn, name)  # 404 for an unknown name
    worker = Worker(database, request.app.state.settings, transport=request.app.state.outbound)
    received = await worker.poll_due(force=name)
    return {"received": received}


@router.get("/exchange/metrics", summary="Per connection: queue, deliveries, failures", operation_id="admin_metrics")
async def metrics(access: AdminDep, program: ProgramDep, database: DatabaseDep) -> dict[str, Any]:
    async with database.read() as conn:
        return await connection_health(conn, program.id, datetime.now(UTC))


@router.get("/deadletters", summary="Changes an EHR would not take", operation_id="admin_list_deadletters")
async def list_deadletters(
    access: AdminDep, database: DatabaseDep, connection: str | None = Query(default=None, max_length=100)
) -> list[dict[str, Any]]:
    async with database.read() as conn:
        return await outbox.dead_letters(conn, connection)


class Replay(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ids: list[Annotated[int, Field(ge=1, le=2**63 - 1)]] | None = Field(
        default=None, max_length=10_000, description="Outbox ids (a database BIGINT); none = every dead letter."
    )
    connection: str | None = Field(default=None, max_length=100)


@router.post("/deadletters/replay", summary="Queue dead letters again", operation_id="admin_replay_deadletters")
async def replay(request: Request, body: Replay, access: AdminDep, database: DatabaseDep) -> dict[str, int]:
    async with database.transaction() as conn:
        count = await outbox.replay(conn, body.ids, body.connection, datetime.now(UTC))
        await write(conn, _audit(request, access, "deadletters-replay", {"count": count}))
    return {"queued": count}
