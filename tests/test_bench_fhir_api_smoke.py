"""The FHIR API benchmark's parts keep working (`make bench` runs the whole; nothing here is timed):
the floor app answers with the canned bytes, and the load generator, in its own process, drives a
server on loopback and reports its figures."""

import os
import sys

import httpx
import orjson

from tests.bench import bench_fhir_api as bench

BODY = b'{"resourceType":"Patient","id":"p1"}'


async def test_floor_app_serves_the_canned_bytes(tmp_path, monkeypatch):
    canned = tmp_path / "canned.json"
    canned.write_bytes(orjson.dumps({"/fhir/Patient/p1": BODY.decode(), "/fhir/Encounter?_count=20": "{}"}))
    monkeypatch.setenv("BENCH_FHIR_CANNED", str(canned))
    transport = httpx.ASGITransport(app=bench.floor_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://floor") as http:
        response = await http.get("/fhir/Patient/p1")
        assert response.content == BODY
        assert response.headers["content-type"] == bench.FHIR_JSON
        assert (await http.get("/fhir/Encounter", params={"_count": 20})).content == b"{}"
        assert (await http.get("/fhir/Patient/other")).status_code == 404


def test_load_generator_drives_a_loopback_server(tmp_path):
    canned = tmp_path / "canned.json"
    canned.write_bytes(orjson.dumps({"/fhir/Patient/p1": BODY.decode()}))
    port = bench.free_port()
    env = {**os.environ, "BENCH_FHIR_CANNED": str(canned)}
    ceiling = [sys.executable, "-m", "tests.bench.bench_fhir_api", "--ceiling", str(port)]
    with bench.started(ceiling, env, f"http://{bench.HOST}:{port}/", tmp_path / "ceiling.log"):
        figures = bench.load(port, "/fhir/Patient/p1", 0.2, connections=4)
        missing = bench.load(port, "/fhir/Patient/none", 0.1, connections=1)
    assert figures["requests"] > 0 and figures["errors"] == 0
    assert figures["rps"] > 0 and figures["p99_ms"] >= figures["p50_ms"] > 0
    assert missing["errors"] == missing["requests"] > 0
