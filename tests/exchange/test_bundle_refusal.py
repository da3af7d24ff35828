"""An EHR that lists ``transaction`` but refuses transaction Bundles (respx): the batch goes on as single
writes, each resource once; the connection remembers it (CLI, admin API, Prometheus) so the next
batches do not try a Bundle first; a resource the EHR refuses dead-letters alone, with what it said."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
import respx
from prometheus_client.parser import text_string_to_metric_families

from mappings.ids import fhir_id
from service.exchange.worker import Worker
from tests.exchange.support import FakeEhr, add_connection, consented_session, fast_settings, states, writes_of


def outcome(code: str, diagnostics: str) -> dict[str, Any]:
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": code, "diagnostics": diagnostics}],
    }


REFUSALS = {
    "403": httpx.Response(403, json=outcome("forbidden", "scope does not permit a transaction for this client")),
    "405": httpx.Response(405),
    "501": httpx.Response(501, json=outcome("not-supported", "transaction")),
    "400-not-supported": httpx.Response(400, json=outcome("not-supported", "Bundle type transaction")),
    "422-diagnostics": httpx.Response(422, json=outcome("processing", "Transaction bundles are not supported")),
}


@pytest.fixture
def ehr():
    with respx.mock(assert_all_called=False) as router:
        yield FakeEhr(router)


@pytest.fixture
async def sessions(client, database, program, tmp_path):
    await add_connection(database, program, tmp_path)
    return [await consented_session(client) for _ in range(3)]


def worker_of(database, settings, batch: int = 50) -> Worker:
    return Worker(database, fast_settings(settings).model_copy(update={"outbox_batch": batch}))


@pytest.fixture
def cli(database, monkeypatch):
    from typer.testing import CliRunner

    from service.cli.exchange import ehr_app
    from service.cli.outbox import deadletters_app
    from service.settings import get_settings

    monkeypatch.setenv("PEERLINK_DATABASE_URL", database.url.render_as_string(hide_password=False))
    get_settings.cache_clear()
    runner = CliRunner()
    apps = {"ehr": ehr_app, "deadletters": deadletters_app}

    async def run(group: str, *args: str) -> Any:
        return await asyncio.to_thread(runner.invoke, apps[group], list(args))

    yield run
    get_settings.cache_clear()


async def connection_view(client) -> dict[str, Any]:
    (found,) = (await client.get("/admin/v1/ehr-connections")).json()
    view: dict[str, Any] = found
    return view


async def prometheus(client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = (await client.get("/metrics")).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


@pytest.mark.parametrize("refusal", list(REFUSALS))
async def test_a_refused_bundle_goes_as_single_writes_each_resource_once(ehr, sessions, database, settings, refusal):
    ehr.bundle_refusal = REFUSALS[refusal]
    assert await worker_of(database, settings).drain() == 6
    assert {s for _, s, _ in await states(database)} == {"delivered"}
    assert ehr.bundles_tried == 1
    assert set(ehr.writes.values()) == {1}  # every resource exactly once
    assert len(ehr.held("DocumentReference")) == 3 and len(ehr.held("Encounter")) == 3
    assert all(r.method == "PUT" for r in writes_of(ehr)[1:])  # after the refused Bundle: single writes


async def test_batches_after_the_refusal_go_as_single_writes_without_trying_a_bundle(
    ehr, sessions, database, settings, client
):
    ehr.bundle_refusal = REFUSALS["405"]
    worker = worker_of(database, settings, batch=2)  # several batches, pipelined
    assert await worker.drain() == 6
    assert ehr.bundles_tried == 1 and set(ehr.writes.values()) == {1}
    await consented_session(client)
    assert await worker_of(database, settings).drain() == 2  # a new worker: the refusal is on the connection
    assert ehr.bundles_tried == 1
    assert {s for _, s, _ in await states(database)} == {"delivered"}


async def test_the_connection_shows_the_downgrade_until_an_operator_clears_it(
    ehr, sessions, database, settings, client, cli
):
    ehr.bundle_refusal = REFUSALS["403"]
    worker = worker_of(database, settings)
    await worker.drain()
    listed = await cli("ehr", "list")
    assert listed.exit_code == 0, listed.output
    assert "single writes: Bundles refused" in listed.stdout and "HTTP 403 (forbidden)" in listed.stdout
    view = await connection_view(client)
    assert view["bundles_refused_at"] is not None and view["bundles_refused_reason"] == "HTTP 403 (forbidden)"
    assert (await client.get("/admin/v1/exchange/metrics")).json()["hospital"]["bundles_refused"] is True
    assert (await prometheus(client))[("peerlink_ehr_bundles_refused", (("connection", "hospital"),))] == 1
    assert worker.counters["hospital"].bundle_refusals == 1

    cleared = await cli("ehr", "update", "hospital", "--retry-bundles")
    assert cleared.exit_code == 0, cleared.output
    assert "bundles (refusal cleared)" in cleared.stdout
    view = await connection_view(client)
    assert view["bundles_refused_at"] is None and view["bundles_refused_reason"] is None
    assert (await prometheus(client))[("peerlink_ehr_bundles_refused", (("connection", "hospital"),))] == 0
    assert "\tbundles" in (await cli("ehr", "list")).stdout

    ehr.bundle_refusal = None  # the EHR was fixed: the same worker tries a Bundle again
    await consented_session(client)
    assert await worker.drain() == 2
    assert ehr.bundles_tried == 2
    assert {s for _, s, _ in await states(database)} == {"delivered"}


async def test_a_bundle_refused_for_its_content_is_no_downgrade(ehr, sessions, database, settings, client):
    ehr.faults = [httpx.Response(422, json=outcome("invalid", "Encounter.period: end before start"))]
    assert await worker_of(database, settings).drain() == 6
    assert {s for _, s, _ in await states(database)} == {"delivered"}  # split, and the split resend went
    assert (await connection_view(client))["bundles_refused_at"] is None
    await consented_session(client)
    tried = ehr.bundles_tried
    await worker_of(database, settings).drain()
    assert ehr.bundles_tried == tried + 1  # still in Bundles


async def test_a_refused_resource_dead_letters_alone_with_what_the_ehr_said(
    ehr, sessions, database, settings, client, program, cli
):
    ehr.bundle_refusal = REFUSALS["403"]
    refused_note = f"DocumentReference/{fhir_id(program.identifier_system, 'note', sessions[1]['note'])}"
    said = "DocumentReference.content[0].attachment: contentType is required"
    issue = {"severity": "error", "code": "invalid", "details": {"text": "Invalid resource"}, "diagnostics": said}
    ehr.refused[refused_note] = httpx.Response(422, json={"resourceType": "OperationOutcome", "issue": [issue]})
    assert await worker_of(database, settings).drain() == 6
    found = await states(database)
    assert [s for _, s, _ in found].count("dead") == 1
    assert [(k, s) for k, s, _ in found if s == "dead"] == [("note", "dead")]
    assert len(ehr.held("DocumentReference")) == 2 and len(ehr.held("Encounter")) == 3
    assert refused_note not in ehr.resources
    assert ehr.bundles_tried == 1

    expected = f"error invalid: {said} / Invalid resource"
    (letter,) = (await client.get("/admin/v1/deadletters")).json()
    assert letter["reason"] == "HTTP 422 (invalid)"
    assert letter["ehr_status"] == 422 and letter["ehr_outcome"] == expected
    listed = await cli("deadletters", "list")
    assert listed.exit_code == 0, listed.output
    assert f"EHR: 422 {expected}" in listed.stdout


async def test_what_the_ehr_said_is_truncated_and_holds_only_the_issues(ehr, sessions, database, settings, client):
    long = "x" * 2000
    body = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "invalid", "diagnostics": long}],
        "contained": [{"resourceType": "Patient", "name": [{"family": "Echoed"}]}],
    }
    ehr.faults = [httpx.Response(422, json=body)] * 40  # the Bundle, and every single write after the split
    await worker_of(database, settings).drain()
    letters = (await client.get("/admin/v1/deadletters")).json()
    assert letters and all(len(d["ehr_outcome"]) == 500 for d in letters)
    assert all("Echoed" not in d["ehr_outcome"] and d["ehr_outcome"].endswith("...") for d in letters)
