"""/metrics: Prometheus text with request counts by route template, outbox figures, tokens; no PHI."""

from prometheus_client.parser import text_string_to_metric_families

from tests.factories import World


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_metrics_count_requests_by_route_template_and_tokens(client):
    world = await World(client).build()
    await client.get(f"/peer/v1/participants/{world.ids['participant']}")
    await client.get("/peer/v1/participants/no-such-id")
    response = await client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    found = samples(response.text)
    read = ("method", "GET"), ("route", "/peer/v1/participants/{record_id}")
    assert found[("peerlink_http_requests_total", (*read, ("status", "200")))] == 1
    assert found[("peerlink_http_requests_total", (*read, ("status", "404")))] == 1
    assert found[("peerlink_tokens_issued_total", (("client", "program-admin"),))] == 1
    assert ("peerlink_http_request_seconds_count", read) in found
    assert found[("peerlink_audit_write_seconds_count", ())] >= 8  # the world's eight writes, then the reads
    assert world.ids["participant"] not in response.text  # route templates, never ids
    assert "Robin" not in response.text and "Example" not in response.text


async def test_refused_tokens_are_counted(anonymous):
    await anonymous.post("/auth/token", data={"grant_type": "password"})
    text = (await anonymous.get("/metrics")).text
    assert samples(text)[("peerlink_token_failures_total", (("error", "unsupported_grant_type"),))] == 1
