"""OpenTelemetry: a request's span has the database statements and the outbound HTTP calls under it
(in-memory exporter); without an endpoint nothing is traced."""

from typing import Any

import httpx
import respx
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from service import tracing
from service.app import create_app
from tests.conftest import BASE_URL, token_headers
from tests.exchange.support import FakeEhr, add_connection


async def test_a_poll_request_traces_its_sql_and_its_calls_to_the_ehr(settings, database, program, tmp_path):
    exporter = InMemorySpanExporter()
    app = create_app(settings, database, span_exporter=exporter)
    await add_connection(database, program, tmp_path, poll_referrals=True, task_owner="Organization/peer")
    with respx.mock(assert_all_called=False) as router:
        ehr = FakeEhr(router)
        ehr.seed_referral()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http:
            headers = await token_headers(http, database, program, "tracing-admin")
            exporter.clear()
            response = await http.post("/admin/v1/ehr-connections/hospital/poll", headers=headers)
            assert response.status_code == 200, response.text
    spans = exporter.get_finished_spans()
    attributes: dict[int, dict[str, Any]] = {id(s): dict(s.attributes or {}) for s in spans}
    (server,) = [s for s in spans if s.kind.name == "SERVER"]
    assert attributes[id(server)]["http.route"] == "/admin/v1/ehr-connections/{name}/poll"
    trace = server.context.trace_id if server.context else None
    children = [s for s in spans if s.context and s.context.trace_id == trace and s is not server]
    sql = [s for s in children if attributes[id(s)].get("db.system") in ("sqlite", "postgresql")]
    outbound = [s for s in children if s.kind.name == "CLIENT" and "db.system" not in attributes[id(s)]]
    assert sql and outbound
    assert any(
        "ehr.test" in str(attributes[id(s)].get("url.full", attributes[id(s)].get("http.url"))) for s in outbound
    )
    assert all("Okafor" not in str(attributes[id(s)].get("db.statement", "")) for s in sql)  # statements, no values


def test_tracing_is_off_without_an_endpoint_and_exports_over_otlp_with_one():
    assert tracing.provider(None) is None
    traces = tracing.provider("http://127.0.0.1:4318")
    assert traces is not None
    processors: Any = traces._active_span_processor._span_processors  # the exporter wired in
    exporter = processors[0]._batch_processor._exporter
    assert len(processors) == 1
    assert type(exporter).__name__ == "OTLPSpanExporter"
    assert exporter._endpoint == "http://127.0.0.1:4318/v1/traces"
    traces.shutdown()
