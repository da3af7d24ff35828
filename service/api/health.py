"""Liveness and readiness probes, and the Prometheus metrics."""

from __future__ import annotations

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST
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


@router.get(
    "/metrics",
    summary="Prometheus metrics (requests, latency, outbox, tokens, database pool); no PHI",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}},
)
async def metrics(request: Request, database: DatabaseDep) -> Response:
    body = await request.app.state.metrics.render(database)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
