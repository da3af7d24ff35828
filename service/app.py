"""create_app(settings) -> FastAPI: mounts routers and middleware, nothing else."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import httpx
from fastapi import FastAPI
from fastapi.telemetry import TelemetryConfig
from opentelemetry.sdk.trace.export import SpanExporter
from sqlalchemy.exc import SQLAlchemyError

from service import __version__, tracing
from service.api import admin, admin_exchange, auth, contract, health, problems
from service.api.compression import Compression
from service.api.fhir.hot import HotPaths
from service.api.fhir.router import fhir_router
from service.api.middleware import BodyLimitMiddleware, RequestContextMiddleware
from service.api.peer.router import peer_router
from service.auth import runtime as security
from service.bulk.runner import ExportRunner
from service.console.mount import install as install_console
from service.domain.billing import load_payers
from service.domain.instruments import load_registry
from service.domain.matching.config import load_config as load_matching
from service.exchange.worker import Worker
from service.fhir.projection import refresh_all_questionnaires
from service.metrics import Metrics
from service.settings import Settings, get_settings
from service.store import Database

log = logging.getLogger("peerlink.app")

DESCRIPTION = (
    "PeerLink holds a peer-support program's records and exchanges them with hospital EHRs as FHIR R4. "
    "This is the peer program's JSON API (`/peer/v1`); errors are RFC 7807 problem+json."
)


async def _serve_instruments(database: Database) -> None:
    """Every program's Questionnaires as the instruments now are (an instrument file added to the
    program's folder is served from this start on); unchanged ones are left alone."""
    try:
        async with database.transaction() as conn:
            await refresh_all_questionnaires(conn, datetime.now(UTC))
    except SQLAlchemyError as error:  # not migrated yet, or another replica did it at the same moment
        log.warning("questionnaires not refreshed at start-up: %s", type(error).__name__)


def create_app(
    settings: Settings | None = None,
    database: Database | None = None,
    *,
    outbound: httpx.AsyncBaseTransport | None = None,
    span_exporter: SpanExporter | None = None,
) -> FastAPI:
    """``outbound`` carries the gateway's own outbound HTTP (client JWKS URLs, an external issuer's
    keys, and the in-process worker's EHR calls)."""
    settings = settings or get_settings()
    owns_database = database is None
    database = database or Database(settings.database_url, echo=settings.db_echo)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        stop = asyncio.Event()
        worker = None
        await _serve_instruments(database)
        if settings.worker_in_process:  # make run: one process delivers too (replicas run `peerlink worker`)
            worker = asyncio.create_task(Worker(database, settings, transport=outbound).run(stop))
        exports = (
            asyncio.create_task(ExportRunner(database, settings).run(stop)) if settings.export_in_process else None
        )
        yield
        stop.set()
        if worker is not None:
            await worker
        if exports is not None:
            await exports
        if owns_database:
            await database.dispose()

    # FastAPI's own OpenTelemetry (global providers, looked up on every request) stays off: tracing is
    # service.tracing's, on PEERLINK_OTEL_ENDPOINT, and metrics are /metrics (profiled: ~1% of a search)
    native_telemetry: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}
    app = FastAPI(
        title="PeerLink", version=__version__, description=DESCRIPTION, lifespan=lifespan, telemetry=native_telemetry
    )
    app.state.settings = settings
    app.state.database = database
    app.state.program_cache = {}
    app.state.instruments = load_registry(settings.instruments_dir)  # a wrong instrument file fails here
    app.state.payers = load_payers(settings.payers_dir)  # a wrong payer rules file fails here
    app.state.matching = load_matching(settings.matching_dir)  # a wrong matching file fails here
    app.state.metrics = Metrics()
    app.state.security = security.build(settings, database, outbound)
    app.state.outbound = outbound
    problems.install(app)
    app.include_router(fhir_router())  # first: the hot read path matches before the peer routes
    app.include_router(health.router)
    app.include_router(auth.router)
    app.include_router(admin.router)
    app.include_router(admin_exchange.router)
    app.include_router(peer_router())
    install_console(app)  # the web console at /console (after problems.install: it wraps its handler)
    contract.install(app)  # the document declares every error answer (service.api.contract)
    app.add_middleware(HotPaths)  # innermost: FHIR read and search without the routing (service.api.fhir.hot)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(Compression, minimum_size=1024)  # Starlette's GZipMiddleware, lighter without gzip
    traces = tracing.provider(settings.otel_endpoint, span_exporter)
    if traces is not None:
        tracing.instrument(app, database, traces)
    app.add_middleware(RequestContextMiddleware, metrics=app.state.metrics)  # added last: outermost
    return app
