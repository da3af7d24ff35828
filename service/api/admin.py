"""Admin API (/admin/v1): client registrations and signing keys. Needs the peerlink.admin scope."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from service.api.access import Access, AdminDep
from service.api.deps import DatabaseDep, ProgramDep
from service.audit import AuditRecord, write
from service.auth import clients
from service.auth.runtime import Security
from service.domain.errors import NotFound

router = APIRouter(prefix="/admin/v1", tags=["Admin"])


class ClientRegistration(BaseModel):
    model_config = ConfigDict(extra="forbid")

    client_id: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._:\-]+$")
    scopes: str = Field(min_length=1, max_length=2000, description="Space-separated, e.g. system/*.rs")
    jwks: dict[str, Any] | None = Field(default=None, description="The client's public keys (a JWK Set).")
    jwks_url: str | None = Field(default=None, max_length=500, description="Where the client publishes its JWKS.")
    organization: str | None = Field(
        default=None, max_length=300, description="Data boundary: identifier system|value or NPI; none = the program."
    )


def _audit(request: Request, access: Access, subtype: str, action: str, detail: dict[str, Any]) -> AuditRecord:
    return AuditRecord(
        "admin",
        subtype,
        action,  # type: ignore[arg-type]
        "0",
        client_id=access.client_id,
        organization=access.organization,
        program_id=access.program_id,
        address=request.client.host if request.client else None,
        detail=detail,
    )


@router.get("/clients", summary="List the program's registered clients", operation_id="admin_list_clients")
async def list_clients(access: AdminDep, program: ProgramDep, database: DatabaseDep) -> list[dict[str, Any]]:
    async with database.read() as conn:
        return [c.public() for c in await clients.list_all(conn, program.id)]


@router.post("/clients", status_code=201, summary="Register a client", operation_id="admin_add_client")
async def add_client(
    request: Request, body: ClientRegistration, access: AdminDep, program: ProgramDep, database: DatabaseDep
) -> dict[str, Any]:
    async with database.transaction() as conn:
        client = await clients.add(
            conn,
            program.id,
            body.client_id,
            body.scopes,
            datetime.now(UTC),
            jwks=body.jwks,
            jwks_url=body.jwks_url,
            organization=body.organization,
        )
        await write(conn, _audit(request, access, "client-add", "C", {"client": client.client_id}))
    return client.public()


async def _set_disabled(
    request: Request, client_id: str, disabled: bool, access: Access, program_id: str, database: DatabaseDep
) -> dict[str, Any]:
    async with database.transaction() as conn:
        found = await clients.find(conn, client_id)
        if found is None or found.program_id != program_id:
            raise NotFound("no client with that id")
        client = await clients.set_disabled(conn, client_id, disabled, datetime.now(UTC))
        subtype = "client-disable" if disabled else "client-enable"
        await write(conn, _audit(request, access, subtype, "U", {"client": client_id}))
    security: Security = request.app.state.security
    security.forget(client_id)
    return client.public()


@router.post("/clients/{client_id}/disable", summary="Disable a client", operation_id="admin_disable_client")
async def disable_client(
    request: Request, client_id: str, access: AdminDep, program: ProgramDep, database: DatabaseDep
) -> dict[str, Any]:
    return await _set_disabled(request, client_id, True, access, program.id, database)


@router.post("/clients/{client_id}/enable", summary="Enable a client again", operation_id="admin_enable_client")
async def enable_client(
    request: Request, client_id: str, access: AdminDep, program: ProgramDep, database: DatabaseDep
) -> dict[str, Any]:
    return await _set_disabled(request, client_id, False, access, program.id, database)


@router.get("/keys", summary="The token-signing keys (ids and dates only)", operation_id="admin_list_keys")
async def list_keys(request: Request, access: AdminDep) -> list[dict[str, Any]]:
    security: Security = request.app.state.security
    return security.keys.summary()


@router.post("/keys/rotate", summary="Rotate the token-signing key", operation_id="admin_rotate_keys")
async def rotate_keys(request: Request, access: AdminDep, database: DatabaseDep) -> dict[str, Any]:
    security: Security = request.app.state.security
    kid = security.keys.rotate()
    await write(database, _audit(request, access, "key-rotate", "E", {"kid": kid}))
    return {"kid": kid, "keys": security.keys.summary()}
