"""The sandbox EHR (in process) refuses transaction Bundles for this client while its CapabilityStatement
still lists ``transaction``: every resource still arrives exactly once (counted at the sandbox), and
the connection's next batch goes as single writes without trying a Bundle first."""

from __future__ import annotations

import httpx
import pytest

from service.exchange import connections
from service.exchange.worker import Worker
from tests.exchange.sandbox_holdings import delivered, versions
from tests.exchange.support import consented_session, fast_settings


class Recording(httpx.AsyncBaseTransport):
    """The sandbox's transport, keeping (method, path) of every request."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.seen: list[tuple[str, str]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.seen.append((request.method, request.url.path))
        return await self.inner.handle_async_request(request)


@pytest.mark.parametrize("status", [403, 405, 422, 501])
async def test_a_sandbox_refusing_bundles_gets_every_resource_once(
    sandbox, connected, client, database, settings, status
):
    knobs = await sandbox.admin.set_knobs(refuse_bundles=status)  # the control API
    assert knobs.refuse_bundles == status
    statement = (await sandbox.http.get(f"{sandbox.fhir}/metadata")).json()
    assert any(i["code"] == "transaction" for i in statement["rest"][0]["interaction"])  # still listed
    seeded = sandbox.sandbox.store.counts()
    for _ in range(3):
        await consented_session(client)
    recording = Recording(sandbox.transport)
    worker = Worker(database, fast_settings(settings), transport=recording)
    assert await worker.drain() == 6

    held = await delivered(database)
    at_ehr = sorted(held.values())
    assert {r.split("/")[0] for r in at_ehr} >= {"Patient", "Encounter", "DocumentReference"}
    assert versions(sandbox, at_ehr) == dict.fromkeys(at_ehr, 1)  # every resource written once
    counts = sandbox.sandbox.store.counts()
    assert counts == {t: n + sum(r.startswith(f"{t}/") for r in at_ehr) for t, n in seeded.items()}
    bundles = [r for r in recording.seen if r == ("POST", sandbox.fhir)]
    assert len(bundles) == 1
    async with database.read() as conn:
        found = await connections.get(conn, "hospital")
    assert found.bundles_refused_at is not None and f"HTTP {status}" in (found.bundles_refused_reason or "")

    await consented_session(client)  # the next batch: single writes, no Bundle tried first
    recording.seen.clear()
    assert await Worker(database, fast_settings(settings), transport=recording).drain() == 2
    assert ("POST", sandbox.fhir) not in recording.seen
    assert any(method == "PUT" for method, _ in recording.seen)
    assert set(versions(sandbox, sorted((await delivered(database)).values())).values()) == {1}


async def test_the_switch_is_off_by_default_and_checked(sandbox):
    assert sandbox.sandbox.knobs.refuse_bundles == 0
    with pytest.raises(httpx.HTTPStatusError):
        await sandbox.admin.set_knobs(refuse_bundles=404)


async def test_a_refused_bundle_is_answered_with_an_operation_outcome(sandbox):
    await sandbox.admin.set_knobs(refuse_bundles=403)
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": []}
    response = await sandbox.post("", bundle)
    assert response.status_code == 403
    issue = response.json()["issue"][0]
    assert response.json()["resourceType"] == "OperationOutcome"
    assert issue["code"] == "forbidden" and "transaction" in issue["diagnostics"]
    await sandbox.admin.set_knobs(refuse_bundles=0)
    assert (await sandbox.post("", bundle)).status_code == 200
