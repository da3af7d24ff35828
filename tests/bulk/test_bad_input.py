"""Every bad kick-off, poll or download is a 4xx OperationOutcome (never a 500), the 400s naming the
parameter; what the token's scopes do not allow is a 403."""

from __future__ import annotations

from typing import Any

import pytest

from tests.bulk.conftest import as_client
from tests.bulk.support import ASYNC


def outcome(answer: Any, status: int) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/fhir+json")
    body = answer.json()
    assert body["resourceType"] == "OperationOutcome" and body["issue"][0]["severity"] == "error"
    return dict(body)


@pytest.mark.parametrize("path", ["/fhir/$export", "/fhir/Patient/$export"])
async def test_without_respond_async_is_a_400(http, admin, path):
    body = outcome(await http.get(path, headers=admin), 400)
    assert body["issue"][0]["expression"] == ["Prefer"]


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"_outputFormat": "text/csv"}, "_outputFormat"),
        ({"_since": "yesterday"}, "_since"),
        ({"_type": "Nonsense"}, "_type"),
        ({"_typeFilter": "Encounter?nonsense=1"}, "_typeFilter"),
        ({"_typeFilter": "Encounter?_sort=date"}, "_typeFilter"),
        ({"_typeFilter": "Encounter"}, "_typeFilter"),
        ({"_elements": "id"}, "_elements"),
        ({"patient": "Patient/x"}, "patient"),
        ({"surprise": "1"}, "surprise"),
    ],
)
async def test_each_bad_parameter_is_a_400_naming_it(http, admin, params, named):
    for path in ("/fhir/$export", "/fhir/Patient/$export"):
        body = outcome(await http.get(path, params=params, headers={**admin, **ASYNC}), 400)
        assert body["issue"][0]["expression"] == [named]


async def test_bad_post_bodies(http, admin):
    headers = {**admin, **ASYNC, "Content-Type": "application/fhir+json"}
    outcome(await http.post("/fhir/$export", content=b"{not json", headers=headers), 400)
    outcome(await http.post("/fhir/$export", content=b'{"resourceType": "Bundle"}', headers=headers), 400)
    outcome(await http.post("/fhir/$export", content=b"_type=Patient", headers={**admin, **ASYNC}), 400)
    unsupported = b'{"resourceType": "Parameters", "parameter": [{"name": "_outputFormat", "valueString": "csv"}]}'
    body = outcome(await http.post("/fhir/$export", content=unsupported, headers=headers), 400)
    assert body["issue"][0]["expression"] == ["_outputFormat"]


async def test_unknown_jobs_groups_and_files_are_404(http, admin):
    unknown = "0" * 32
    outcome(await http.get(f"/fhir/$export-status/{unknown}", headers=admin), 404)
    outcome(await http.delete(f"/fhir/$export-status/{unknown}", headers=admin), 404)
    outcome(await http.get(f"/fhir/$export-file/{unknown}/Patient.ndjson", headers=admin), 404)
    outcome(await http.get("/fhir/Group/no-such-group", headers=admin), 404)
    outcome(await http.get("/fhir/Group/no-such-group/$export", headers={**admin, **ASYNC}), 404)
    for bad in ("/fhir/$export-status/not-a-job", "/fhir/$export-file/" + unknown + "/..%2F..%2Fpeerlink.db"):
        answer = await http.get(bad, headers=admin)
        assert 400 <= answer.status_code < 500
        assert answer.json()["resourceType"] == "OperationOutcome"


async def test_a_file_of_an_unfinished_job_is_404(http, admin):
    status = (await http.get("/fhir/$export", params={"_type": "Patient"}, headers={**admin, **ASYNC})).headers[
        "content-location"
    ]
    job = status.rsplit("/", 1)[1]
    outcome(await http.get(f"/fhir/$export-file/{job}/Patient.ndjson", headers=admin), 404)


async def test_scopes_limit_the_export(http, database, demo):
    nothing = await as_client(http, database, demo, "writer", "system/Task.cu")
    outcome(await http.get("/fhir/$export", headers={**nothing, **ASYNC}), 403)
    patients = await as_client(http, database, demo, "patients-only", "system/Patient.rs")
    outcome(await http.get("/fhir/$export", params={"_type": "Encounter"}, headers={**patients, **ASYNC}), 403)
    assert (await http.get("/fhir/$export", headers={**patients, **ASYNC})).status_code == 202
    outcome(await http.get("/fhir/Group", headers=patients), 403)  # Group needs system/Group.rs (or *.rs)
