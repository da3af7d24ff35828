"""OpenTelemetry tracing, off unless PEERLINK_OTEL_ENDPOINT names an OTLP/HTTP collector: a span per
request (FastAPI), with the database statements (SQLAlchemy) and outbound HTTP calls (httpx: EHRs,
JWKS URLs) under it. Span attributes carry routes and SQL text with parameters left out; no PHI."""

from __future__ import annotations

from fastapi import FastAPI
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter

from service import __version__
from service.store import Database


def provider(endpoint: str | None, exporter: SpanExporter | None = None) -> TracerProvider | None:
    """A tracer provider exporting to ``endpoint`` (OTLP/HTTP), or to ``exporter`` (tests); None: off."""
    if endpoint is None and exporter is None:
        return None
    traces = TracerProvider(resource=Resource.create({"service.name": "peerlink", "service.version": __version__}))
    if exporter is not None:
        traces.add_span_processor(SimpleSpanProcessor(exporter))
    if endpoint is not None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        traces.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{endpoint.rstrip('/')}/v1/traces")))
    return traces


def instrument(app: FastAPI, database: Database, traces: TracerProvider) -> None:
    """The SQLAlchemy and httpx instrumentations are process-wide (one app per process in a
    deployment); an app built later in the same process (tests) takes them over."""
    FastAPIInstrumentor.instrument_app(app, tracer_provider=traces, excluded_urls="healthz,readyz,metrics")
    for instrumentor in (SQLAlchemyInstrumentor(), HTTPXClientInstrumentor()):
        if instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.uninstrument()
    # the instrumentation declares SQLAlchemy < 2.1; its engine events work with 2.1 too (the test shows it)
    SQLAlchemyInstrumentor().instrument(engine=database.engine.sync_engine, tracer_provider=traces, skip_dep_check=True)
    HTTPXClientInstrumentor().instrument(tracer_provider=traces)
