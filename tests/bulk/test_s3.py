"""Export files in an S3-compatible bucket: a real S3 server (moto's server mode, started by the test
on loopback) holds them; a second gateway instance on the same database and bucket (another replica:
its own empty export folder) answers the status poll and serves the download; deleting the export
removes its objects."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3  # type: ignore[import-untyped]
import httpx
import pytest
from moto.server import ThreadedMotoServer

from service.app import create_app
from service.bulk.runner import ExportRunner
from service.settings import Settings
from service.store import Database
from tests.bulk.support import files, finished, kick_off
from tests.conftest import BASE_URL
from tests.e2e.gateway import free_port

BUCKET = "peerlink-exports"


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "test-key",
        "AWS_SECRET_ACCESS_KEY": "test-secret",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    try:
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=BUCKET)
        yield endpoint
    finally:
        server.stop()


def _objects(endpoint: str) -> list[str]:
    listed: dict[str, Any] = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").list_objects_v2(
        Bucket=BUCKET
    )
    return sorted(item["Key"] for item in listed.get("Contents", []))


def _replica(settings: Settings, folder: Path, endpoint: str) -> Settings:
    return settings.model_copy(
        update={"export_dir": folder, "export_s3_bucket": BUCKET, "export_s3_endpoint_url": endpoint}
    )


async def test_files_in_a_bucket_are_served_by_any_replica(http, admin, database: Database, settings, s3, tmp_path):
    one = _replica(settings, tmp_path / "replica-1", s3)
    two = _replica(settings, tmp_path / "replica-2", s3)
    async with (
        httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(one, database)), base_url=BASE_URL) as first,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(two, database)), base_url=BASE_URL) as second,
    ):
        status = await kick_off(first, admin, _type="Patient,Encounter")
        manifest = await finished(second, admin, status, ExportRunner(database, one))
        job_id = status.rsplit("/", 1)[1]
        assert _objects(s3) == [f"exports/{job_id}/Encounter.ndjson", f"exports/{job_id}/Patient.ndjson"]
        assert not (tmp_path / "replica-1" / job_id).exists()  # nothing left on the replica that ran it
        exported = await files(second, admin, manifest)  # downloaded through the other replica
        assert len(exported["Patient"]) == 12
        in_folder = await kick_off(http, admin, _type="Patient,Encounter")  # the same export into the folder
        local = await files(http, admin, await finished(http, admin, in_folder, ExportRunner(database, settings)))
        assert {r["id"] for r in exported["Encounter"]} == {r["id"] for r in local["Encounter"]}
        missing = await second.get(f"/fhir/$export-file/{job_id}/Goal.ndjson", headers=admin)
        assert missing.status_code == 404
        assert (await second.delete(status, headers=admin)).status_code == 202
        assert _objects(s3) == []
        assert (await first.get(status, headers=admin)).status_code == 404
