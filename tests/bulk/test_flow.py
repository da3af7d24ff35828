"""The whole $export flow in process: kick-off, polling, manifest, download, delete; the export of the
demo program holds exactly what paging through search returns; every line validates."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson

from mappings.models import validate
from service.fhir.search_params import SEARCH_PARAMS
from tests.bulk.support import ASYNC, files, finished, kick_off, search_ids


async def test_kick_off_poll_manifest_download_delete(http, admin, runner):
    status = await kick_off(http, admin)
    assert status.startswith("http://peerlink.test/fhir/$export-status/")
    waiting = await http.get(status, headers=admin)
    assert waiting.status_code == 202
    assert waiting.headers["x-progress"] == "queued" and int(waiting.headers["retry-after"]) > 0
    manifest = await finished(http, admin, status, runner)
    assert manifest["requiresAccessToken"] is True
    assert manifest["request"].endswith("/fhir/$export")
    moment = datetime.fromisoformat(manifest["transactionTime"].replace("Z", "+00:00"))
    assert moment <= datetime.now(UTC)
    assert manifest["error"] == []
    assert {item["type"] for item in manifest["output"]} >= {"Patient", "Encounter", "DocumentReference"}
    first = manifest["output"][0]["url"]
    assert (await http.get(first, headers=admin)).status_code == 200
    assert (await http.get(first)).status_code == 401  # the token is required
    assert (await http.delete(status, headers=admin)).status_code == 202
    assert (await http.get(status, headers=admin)).status_code == 404
    assert (await http.get(first, headers=admin)).status_code == 404
    assert (await http.delete(status, headers=admin)).status_code == 404


async def test_the_demo_export_is_what_search_returns_and_every_line_validates(http, admin, runner):
    manifest = await finished(http, admin, await kick_off(http, admin), runner)
    exported = await files(http, admin, manifest)
    for resource_type in SEARCH_PARAMS:
        expected = await search_ids(http, admin, resource_type)
        got = [r["id"] for r in exported.get(resource_type, [])]
        assert len(got) == len(set(got)), resource_type  # nothing twice
        assert set(got) == expected, resource_type
    assert sum(len(v) for v in exported.values()) > 100
    for resources in exported.values():
        for resource in resources:
            validate(resource)


async def test_the_lines_are_the_stored_bytes_as_a_read_serves_them(http, admin, runner):
    manifest = await finished(http, admin, await kick_off(http, admin, _type="Patient"), runner)
    [item] = manifest["output"]
    lines = (await http.get(item["url"], headers=admin)).content.split(b"\n")[:-1]
    for line in lines[:3]:
        resource_id = orjson.loads(line)["id"]
        assert (await http.get(f"/fhir/Patient/{resource_id}", headers=admin)).content == line


async def test_type_since_and_type_filter(http, admin, runner, settings):
    status = await kick_off(
        http, admin, _type="Encounter,Patient", _typeFilter="Encounter?status=finished", _since="2000-01-01T00:00:00Z"
    )
    exported = await files(http, admin, await finished(http, admin, status, runner))
    assert set(exported) == {"Encounter", "Patient"}
    assert {r["id"] for r in exported["Encounter"]} == await search_ids(http, admin, "Encounter", status="finished")
    later = await kick_off(http, admin, _type="Patient", _since="2999-01-01T00:00:00Z")
    assert (await finished(http, admin, later, runner))["output"] == []
    assert list((settings.export_dir / later.rsplit("/", 1)[1]).iterdir()) == []  # no empty files


async def test_patient_level_export_leaves_out_what_is_about_no_patient(http, admin, runner):
    manifest = await finished(http, admin, await kick_off(http, admin, "/fhir/Patient/$export"), runner)
    exported = await files(http, admin, manifest)
    assert "Practitioner" not in exported and "Patient" in exported
    assert manifest["request"].endswith("/fhir/Patient/$export")


async def test_post_kick_off_with_parameters(http, admin, runner):
    body = {"resourceType": "Parameters", "parameter": [{"name": "_type", "valueString": "Goal"}]}
    answer = await http.post(
        "/fhir/$export", content=orjson.dumps(body), headers={**admin, **ASYNC, "Content-Type": "application/fhir+json"}
    )
    assert answer.status_code == 202, answer.text
    manifest = await finished(http, admin, answer.headers["content-location"], runner)
    assert [item["type"] for item in manifest["output"]] == ["Goal"]


async def test_lenient_handling_puts_what_was_ignored_in_the_error_file(http, admin, runner):
    answer = await http.get(
        "/fhir/$export",
        params={"_type": "Patient", "_typeFilter": "Patient?nonsense=1", "_elements": "id"},
        headers={**admin, "Prefer": "respond-async, handling=lenient"},
    )
    assert answer.status_code == 202, answer.text
    manifest = await finished(http, admin, answer.headers["content-location"], runner)
    [error] = manifest["error"]
    assert error["type"] == "OperationOutcome"
    outcomes = [orjson.loads(x) for x in (await http.get(error["url"], headers=admin)).content.splitlines()]
    assert len(outcomes) == 2
    for outcome in outcomes:
        validate(outcome)
    text = " ".join(o["issue"][0]["diagnostics"] for o in outcomes)
    assert "_elements" in text and "_typeFilter" in text
    assert [item["type"] for item in manifest["output"]] == ["Patient"]
