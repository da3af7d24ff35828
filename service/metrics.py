"""Prometheus metrics of one gateway process (prometheus-client; a registry per app, so tests and
benchmarks can build many apps in one process)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from sqlalchemy import func, select

from service.store import Database
from service.store.tables import ehr_connections, outbox

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "peerlink_http_requests", "HTTP requests by route and status", ["method", "route", "status"], registry=r
        )
        self.latency = Histogram(
            "peerlink_http_request_seconds",
            "HTTP request latency",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.tokens = Counter("peerlink_tokens_issued", "Access tokens issued", ["client"], registry=r)
        self.token_failures = Counter("peerlink_token_failures", "Token requests refused", ["error"], registry=r)
        self.audit_latency = Histogram(
            "peerlink_audit_write_seconds", "Time to write one audit record", buckets=LATENCY_BUCKETS, registry=r
        )
        self.outbox_depth = Gauge("peerlink_outbox_depth", "Changes waiting per connection", ["connection"], registry=r)
        self.outbox_oldest = Gauge(
            "peerlink_outbox_oldest_seconds", "Age of the oldest waiting change", ["connection"], registry=r
        )
        self.outbox_rows = Gauge(
            "peerlink_outbox_changes",
            "Changes per connection and state (delivered, dead, ...)",
            ["connection", "state"],
            registry=r,
        )
        self.retries = Gauge(
            "peerlink_outbox_retries", "Failed attempts so far, per connection", ["connection"], registry=r
        )
        self.token_failures_ehr = Gauge(
            "peerlink_ehr_token_failures", "Failed token requests to an EHR", ["connection"], registry=r
        )
        self.bundles_refused = Gauge(
            "peerlink_ehr_bundles_refused",
            "1 while an EHR's batches go as single writes because it refused a transaction Bundle",
            ["connection"],
            registry=r,
        )
        self.pool_in_use = Gauge("peerlink_db_pool_in_use", "Database connections checked out", registry=r)
        self.pool_size = Gauge("peerlink_db_pool_size", "Database connections held by the pool", registry=r)

    async def render(self, database: Database) -> bytes:
        """The exposition text; queue figures are read from the database at scrape time (they are the
        same whichever replica or worker is asked)."""
        await self._queue(database)
        self._pool(database)
        return generate_latest(self.registry)

    async def _queue(self, database: Database) -> None:
        now = datetime.now(UTC)
        q = outbox.c
        async with database.read() as conn:
            rows = (
                await conn.execute(
                    select(q.connection, q.state, func.count(), func.min(q.created_at), func.sum(q.attempts)).group_by(
                        q.connection, q.state
                    )
                )
            ).all()
            c = ehr_connections.c
            failures = (await conn.execute(select(c.name, c.token_failures, c.bundles_refused_at))).all()
        waiting: dict[str, tuple[int, Any]] = {}
        retries: dict[str, int] = {}
        for name, state, count, oldest, attempts in rows:
            self.outbox_rows.labels(name, state).set(count)
            retries[name] = retries.get(name, 0) + int(attempts or 0)
            if state in ("pending", "sending"):
                depth, first = waiting.get(name, (0, None))
                waiting[name] = (depth + count, oldest if first is None or (oldest and oldest < first) else first)
        for name, (depth, oldest) in waiting.items():
            self.outbox_depth.labels(name).set(depth)
            self.outbox_oldest.labels(name).set((now - oldest).total_seconds() if oldest else 0.0)
        for name, attempts in retries.items():
            self.retries.labels(name).set(attempts)
            if name not in waiting:
                self.outbox_depth.labels(name).set(0)
                self.outbox_oldest.labels(name).set(0.0)
        for name, count, refused_at in failures:
            self.token_failures_ehr.labels(name).set(count)
            self.bundles_refused.labels(name).set(0 if refused_at is None else 1)

    def _pool(self, database: Database) -> None:
        pool: Any = database.engine.pool
        checked_out = getattr(pool, "checkedout", None)
        size = getattr(pool, "size", None)
        if callable(checked_out):
            self.pool_in_use.set(checked_out())
        if callable(size):
            self.pool_size.set(size())
