"""The million bench's generator at a small size, on PostgreSQL: the copied participants are what the projection
would write (the mappings render each copied record to the stored content hash and index rows), and a real
gateway process serves them to the EHR client inside the consent boundary: the searches the bench times answer
what the copies hold, and the bench's load processes see no error."""

from __future__ import annotations

import asyncio
import hashlib
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import orjson
import pytest

from service.fhir.render import fhir_resources
from service.fhir.search_params import SEARCH_PARAMS, index_values
from service.records.programs import get_by_code
from service.store import Database
from tests.bench.bench_million import CLIENTS, build, run_clients, searches, token_for
from tests.bench.million_data import dsn
from tests.bench.million_setup import MRN_SYSTEM, SESSIONS
from tests.conftest import PG_URL
from tests.e2e.gateway import PEERLINK
from tests.e2e.scale_support import drop_database, fresh_database, process

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(not PG_URL, reason="needs PEERLINK_TEST_DATABASE_URL (PostgreSQL)")]
PARTICIPANTS = 2 * len(SESSIONS)


async def _setting(url: str, name: str) -> str:
    conn = await asyncpg.connect(dsn(url))
    try:
        value: str = await conn.fetchval(f"SHOW {name}")
    finally:
        await conn.close()
    return value


async def _rows_of(url: str, patient: str) -> tuple[list[asyncpg.Record], dict[int, set[tuple[Any, ...]]]]:
    conn = await asyncpg.connect(dsn(url))
    try:
        resources = await conn.fetch(
            "SELECT * FROM fhir_resources WHERE patient_id = $1 OR source_id IN "
            "(SELECT id FROM participants WHERE id = (SELECT source_id FROM fhir_resources WHERE resource_id = $1))",
            patient,
        )
        index: dict[int, set[tuple[Any, ...]]] = {r["pk"]: set() for r in resources}
        for row in await conn.fetch(
            "SELECT resource_pk, param, token, moment FROM fhir_search WHERE resource_pk = ANY($1::bigint[])",
            list(index),
        ):
            index[row["resource_pk"]].add((row["param"], row["token"], row["moment"]))
    finally:
        await conn.close()
    return resources, index


async def _rendered(url: str, resources: list[asyncpg.Record]) -> dict[tuple[str, str], dict[str, Any]]:
    database = Database(url)
    try:
        async with database.read() as conn:
            program = await get_by_code(conn, "demo")
            found: dict[tuple[str, str], dict[str, Any]] = {}
            for kind, source_id in sorted({(r["source_kind"], r["source_id"]) for r in resources}):
                for resource in await fhir_resources(conn, program, kind, source_id):
                    found[(resource["resourceType"], resource["id"])] = resource
    finally:
        await database.dispose()
    return found


def test_copies_are_what_the_projection_writes_and_the_gateway_serves_them(tmp_path):
    assert PG_URL
    url = asyncio.run(fresh_database(PG_URL, "peerlink_million"))
    try:
        env, key, report = build(url, tmp_path, PARTICIPANTS)
        assert report.participants == len(report.patients) == PARTICIPANTS
        assert 18 * PARTICIPANTS <= report.resources <= 24 * PARTICIPANTS  # about 21 resources a participant
        patients = report.patients[-len(SESSIONS) :]  # the second copy of each template
        assert len({p for p, _ in report.patients}) == PARTICIPANTS
        # migration 0016: every session plans a search for its own values (no generic plan after 5 runs)
        assert asyncio.run(_setting(url, "plan_cache_mode")) == "force_custom_plan"

        # each copy of a template: the mappings render its records to the stored bytes' hash and index rows
        for patient, _ in patients:
            resources, index = asyncio.run(_rows_of(url, patient))
            rendered = asyncio.run(_rendered(url, resources))
            assert len(resources) == len(rendered) >= 8
            for row in resources:
                resource = rendered[(row["resource_type"], row["resource_id"])]
                assert hashlib.sha256(orjson.dumps(resource)).hexdigest() == row["content_hash"], row["resource_type"]
                body = orjson.loads(row["body"])
                assert body["meta"]["versionId"] == str(row["version_id"])
                wanted = {
                    (name, token, moment)
                    for name, param in SEARCH_PARAMS.get(row["resource_type"], {}).items()
                    for token, moment in index_values(param, body)
                }
                assert index[row["pk"]] == wanted, row["resource_type"]

        # the gateway serves them to the hospital's EHR client, inside the consent boundary
        base = f"http://127.0.0.1:{env['PEERLINK_PORT']}"
        with process([PEERLINK, "serve"], env, tmp_path / "gateway.log", f"{base}/readyz"):
            token = token_for(env, key)
            headers = {"Authorization": f"Bearer {token}"}
            with httpx.Client(base_url=base, headers=headers, timeout=60) as http:
                for n, (patient, mrn) in enumerate(patients):
                    found = http.get("/fhir/Patient", params={"identifier": f"{MRN_SYSTEM}|{mrn}"}).json()
                    assert [e["resource"]["id"] for e in found["entry"]] == [patient]
                    notes = http.get(
                        "/fhir/DocumentReference", params={"patient": patient, "category": "clinical-note"}
                    ).json()
                    assert notes["total"] == SESSIONS[n]
                    pages, encounters = 0, []
                    url_next: str | None = f"/fhir/Encounter?patient={patient}&_count=2"
                    while url_next:
                        page = http.get(url_next).json()
                        pages += 1
                        encounters += [e["resource"]["id"] for e in page.get("entry") or []]
                        url_next = next((link["url"] for link in page["link"] if link["relation"] == "next"), None)
                    assert len(set(encounters)) == len(encounters) == SESSIONS[n]
                    assert pages == (SESSIONS[n] + 1) // 2
                    both = http.get(
                        "/fhir/Encounter", params={"patient": patient, "_revinclude": "DocumentReference:encounter"}
                    ).json()
                    modes = sorted(e["search"]["mode"] for e in both["entry"])
                    assert modes == ["include"] * SESSIONS[n] + ["match"] * SESSIONS[n]
                recent = datetime.now(UTC).date() - timedelta(days=365)
                dated = http.get("/fhir/Encounter", params={"patient": patients[0][0], "date": f"ge{recent}"}).json()
                assert 0 < dated["total"] <= SESSIONS[0]
            # the bench's own load processes: every search answered 200
            for paths in searches(report.patients, random.Random(1), sample=20).values():
                result = run_clients(int(env["PEERLINK_PORT"]), token, paths, 1.0, tmp_path)
                assert result["latencies"]
                assert set(result["statuses"]) == {"200"}, result["statuses"]
                assert 0 < result["cpu_seconds"] < 2 * 1.0 * CLIENTS  # the generator's own CPU, as reported
    finally:
        asyncio.run(drop_database(url))
