"""The fault knobs: 429 bursts with Retry-After, injected 5xx, added latency; changeable while running."""

from __future__ import annotations

import time

from service.sandbox import Knobs


async def statuses(ehr, n: int) -> list[int]:
    headers = await ehr.headers()
    return [(await ehr.http.get(f"{ehr.fhir}/Patient/nope", headers=headers)).status_code for _ in range(n)]


async def test_429_bursts_every_n_requests(make_sandbox):
    ehr = make_sandbox(knobs=Knobs(burst_every=3, burst_size=2, retry_after=7))
    assert await statuses(ehr, 10) == [404, 404, 404, 429, 429, 404, 404, 404, 429, 429]
    headers = await ehr.headers()
    for _ in range(3):
        await ehr.http.get(f"{ehr.fhir}/metadata")
    limited = await ehr.http.get(f"{ehr.fhir}/Patient", headers=headers)
    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "7"
    assert limited.json()["issue"][0]["code"] == "throttled"


async def test_error_rate_one_answers_5xx(make_sandbox):
    ehr = make_sandbox(knobs=Knobs(error_rate=1.0, retry_after=3))
    headers = await ehr.headers()  # the token endpoint is not subject to the error rate
    responses = [await ehr.http.get(f"{ehr.fhir}/Patient", headers=headers) for _ in range(20)]
    assert {r.status_code for r in responses} == {500, 503}
    for response in responses:
        assert response.json()["resourceType"] == "OperationOutcome"
        if response.status_code == 503:
            assert response.headers["retry-after"] == "3"
            assert response.json()["issue"][0]["code"] == "transient"
    assert ehr.sandbox.store.counts()["Patient"] == 50


async def test_error_rate_is_reproducible(make_sandbox):
    one, two = make_sandbox(knobs=Knobs(error_rate=0.5)), make_sandbox(knobs=Knobs(error_rate=0.5))
    first, second = await statuses(one, 30), await statuses(two, 30)
    assert first == second
    assert set(first) == {404, 500, 503}
    assert 5 < first.count(404) < 25


async def test_latency_is_added_to_fhir_and_token_requests(make_sandbox):
    ehr = make_sandbox(knobs=Knobs(latency_ms=150))
    started = time.perf_counter()
    headers = await ehr.headers()
    assert time.perf_counter() - started >= 0.15
    started = time.perf_counter()
    assert (await ehr.http.get(f"{ehr.fhir}/Patient", headers=headers)).status_code == 200
    assert time.perf_counter() - started >= 0.15
    started = time.perf_counter()
    await ehr.admin.state()  # admin is not slowed
    assert time.perf_counter() - started < 0.15


async def test_knobs_change_while_running(ehr):
    assert await statuses(ehr, 3) == [404, 404, 404]
    knobs = await ehr.admin.set_knobs(error_rate=1.0)
    assert knobs.error_rate == 1.0
    assert set(await statuses(ehr, 3)) <= {500, 503}
    await ehr.admin.set_knobs(error_rate=0.0, burst_every=1, burst_size=1)
    assert await statuses(ehr, 4) == [404, 429, 404, 429]
    bad = await ehr.http.patch(
        "/sandbox/knobs", json={"error_rate": 2}, headers={"X-Sandbox-Admin": "test-admin-secret"}
    )
    assert bad.status_code == 400
    assert (await ehr.admin.state())["knobs"]["burst_every"] == 1
