"""Liveness and readiness probes."""

from __future__ import annotations

import structlog
from fastapi import APIRouter
from sqlalchemy.exc import SQLAlchemyError

from service.api.deps import DatabaseDep
from service.domain.errors import Unavailable

router = APIRouter(tags=["health"])
log = structlog.get_logger("peerlink.health")


@router.get("/healthz", summary="The process is alive")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="The gateway can serve: its database answers")
async def readyz(database: DatabaseDep) -> dict[str, str]:
    try:
        await database.ping()
    except (SQLAlchemyError, OSError) as exc:
        log.warning("database_unreachable", error_type=type(exc).__name__)
        raise Unavailable("the database does not answer") from None
    return {"status": "ready", "database": database.url.get_backend_name()}
