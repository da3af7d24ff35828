"""Searches an EHR sends, against a program of 50,000 participants (about 1,000,000 FHIR resources) on
PostgreSQL: a real gateway process on loopback, a real SMART token of an EHR client acting for the sandbox
hospital (the organisation the participants' consents name, so every request carries the consent boundary).

    python -m tests.bench.bench_million [--participants N] [--seconds S]      (make bench-million)

Needs a PostgreSQL server: PEERLINK_BENCH_DATABASE_URL or PEERLINK_TEST_DATABASE_URL (any database URL of
the server); the run's database is created beside it and dropped after. Without one it says so and exits 0.
PEERLINK_BENCH_PARTICIPANTS sets the default size (50,000).

1. The load (``tests/bench/million_data.py``, ``million_setup.py``): templates written through the API's
   operations, copied N times with new ids and moved dates by COPY; its time is printed.
2. Each search for S seconds from 32 keep-alive connections (2 client processes of 16,
   ``tests/bench/million_client.py``), each request for another participant: p50/p99 and whether p99 is
   under 50 ms. Paging: a day's Encounters of the whole program, 50 a page, followed to the last page
   (every page timed).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from service.auth.backend_client import fetch_token, private_key_file
from tests.bench.million_data import LoadReport, load
from tests.bench.million_setup import EHR_CLIENT, MRN_SYSTEM, patients_of, prepare, reregister
from tests.e2e.gateway import PEERLINK, free_port
from tests.e2e.scale_support import drop_database, fresh_database, postgres_server_url, process

PARTICIPANTS = int(os.environ.get("PEERLINK_BENCH_PARTICIPANTS", "50000"))
CONNECTIONS = 32
CLIENTS = 2
TARGET_P99_MS = 50.0
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class SearchResult:
    name: str
    requests: int
    errors: int
    empty: int
    p50: float
    p99: float
    per_second: float
    client_us: float
    """The load generator's CPU per timed request (µs): taken from the cores the gateway and PostgreSQL share."""


HEADER = f"{'search':<44}{'requests':>9}{'/s':>8}{'p50':>9}{'p99':>9}{'errors':>8}{'empty':>7}   p99 < 50 ms  client µs"


def searches(patients: list[tuple[str, str]], rng: random.Random, sample: int = 2000) -> dict[str, list[str]]:
    """Request paths per search, each for another participant (or day)."""
    today = datetime.now(UTC).date()
    chosen = rng.sample(patients, min(sample, len(patients)))
    half_year, year = today - timedelta(days=180), today - timedelta(days=365)
    days = [today - timedelta(days=d) for d in range(10, 200)]
    return {
        "Patient?identifier": [f"/fhir/Patient?identifier={MRN_SYSTEM}|{mrn}" for _, mrn in chosen],
        "DocumentReference?patient&category&date": [
            f"/fhir/DocumentReference?patient={p}&category=clinical-note&date=ge{half_year}" for p, _ in chosen
        ],
        "Encounter?patient&date": [f"/fhir/Encounter?patient={p}&date=ge{year}" for p, _ in chosen],
        "_include (DocumentReference:encounter)": [
            f"/fhir/DocumentReference?patient={p}&_include=DocumentReference:encounter" for p, _ in chosen
        ],
        "_revinclude (DocumentReference:encounter)": [
            f"/fhir/Encounter?patient={p}&_revinclude=DocumentReference:encounter" for p, _ in chosen
        ],
        "paging: a day's Encounters, 50 a page": [
            f"PAGE:/fhir/Encounter?date=ge{d}&date=lt{d + timedelta(days=1)}&_count=50" for d in days
        ],
    }


def run_clients(port: int, token: str, paths: list[str], seconds: float, workdir: Path) -> dict[str, Any]:
    """CLIENTS load processes, CONNECTIONS connections in all; their results merged."""
    children = []
    for n in range(CLIENTS):
        mine = paths[n::CLIENTS] or paths
        file = workdir / f"paths-{n}.json"
        file.write_bytes(orjson.dumps(mine))
        command = [sys.executable, "-m", "tests.bench.million_client", str(port), token]
        out = workdir / f"result-{n}.json"
        out.unlink(missing_ok=True)
        command += [str(CONNECTIONS // CLIENTS), str(seconds), str(file), str(out)]
        children.append((subprocess.Popen(command, cwd=ROOT), out))
    merged: dict[str, Any] = {"latencies": [], "statuses": {}, "empty": 0, "pages": 0, "cpu_seconds": 0.0}
    for child, out in children:
        if child.wait(timeout=seconds + 120) != 0:
            raise RuntimeError(f"load process exited with {child.returncode}")
        result = orjson.loads(out.read_bytes())
        merged["latencies"] += result["latencies"]
        merged["empty"] += result["empty"]
        merged["pages"] += result["pages"]
        merged["cpu_seconds"] += result["cpu_seconds"]
        for status, n in result["statuses"].items():
            merged["statuses"][status] = merged["statuses"].get(status, 0) + n
    return merged


def summarize(name: str, result: dict[str, Any], seconds: float) -> SearchResult:
    latencies = sorted(result["latencies"])
    n = len(latencies)
    errors = sum(count for status, count in result["statuses"].items() if str(status) != "200")
    return SearchResult(
        name,
        n,
        errors,
        result["empty"],
        latencies[n // 2] if n else 0.0,
        latencies[min(n - 1, int(n * 0.99))] if n else 0.0,
        n / seconds,
        result["cpu_seconds"] / n * 1e6 if n else 0.0,
    )


def gateway_env(url: str, workdir: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PEERLINK_DATABASE_URL": url,
        "PEERLINK_LOG_LEVEL": "WARNING",
        "PEERLINK_HOST": "127.0.0.1",
        "PEERLINK_PORT": str(free_port()),
        "PEERLINK_KEYS_DIR": str(workdir / "keys"),
    }


def build(url: str, workdir: Path, participants: int) -> tuple[dict[str, str], Path, LoadReport]:
    """The database at ``url`` migrated, seeded and loaded with ``participants``; prints the load time."""
    env = gateway_env(url, workdir)
    began = time.perf_counter()
    templates, key = prepare(url, env, workdir / "keys")
    template_seconds = time.perf_counter() - began
    report = asyncio.run(load(url, templates, participants, progress=print))
    report.template_seconds = template_seconds
    rows = ", ".join(f"{table} {n:,}" for table, n in report.rows.items())
    print(
        f"load: {report.participants:,} participants, {report.resources:,} FHIR resources in "
        f"{report.seconds:.0f} s ({report.resources / report.seconds:,.0f} resources/s; templates "
        f"{template_seconds:.0f} s before); rows: {rows}"
    )
    return env, key, report


def token_for(env: dict[str, str], key: Path) -> str:
    base = f"http://{env['PEERLINK_HOST']}:{env['PEERLINK_PORT']}"
    body = asyncio.run(fetch_token(f"{base}/auth/token", EHR_CLIENT, private_key_file(key)))
    return str(body["access_token"])


def measure(
    env: dict[str, str], key: Path, report: LoadReport, seconds: float, workdir: Path, only: str = ""
) -> list[SearchResult]:
    port = int(env["PEERLINK_PORT"])
    results = []
    with process([PEERLINK, "serve"], env, workdir / "gateway.log", f"http://127.0.0.1:{port}/readyz"):
        token = token_for(env, key)
        for name, paths in searches(report.patients, random.Random(21)).items():
            if only not in name:
                continue
            run_clients(port, token, paths[:50], 2.0, workdir)  # warm-up
            result = summarize(name, run_clients(port, token, paths, seconds, workdir), seconds)
            results.append(result)
            verdict = "yes" if result.p99 < TARGET_P99_MS and not result.errors else "NO"
            print(
                f"{result.name:<44}{result.requests:>9}{result.per_second:>8.0f}{result.p50:>9.1f}{result.p99:>9.1f}"
                f"{result.errors:>8}{result.empty:>7}   {verdict:<13}{result.client_us:>6.0f}"
            )
    return results


def again(url: str, seconds: float, only: str = "") -> dict[str, float]:
    """The searches again on a loaded database: a new key for the EHR client, the participants read back."""
    with tempfile.TemporaryDirectory(prefix="peerlink-bench-million-") as tmp:
        env = gateway_env(url, Path(tmp))
        key = asyncio.run(reregister(url, Path(tmp) / "keys"))
        report = LoadReport(patients=asyncio.run(patients_of(url)))
        report.participants = len(report.patients)
        print(f"Million bench again: {report.participants:,} participants; load average {os.getloadavg()}")
        print(HEADER)
        results = measure(env, key, report, seconds, Path(tmp), only)
    print(f"load average after: {os.getloadavg()}")
    return {f"{result.name} p99": result.p99 for result in results}


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser()
    parser.add_argument("--participants", type=int, default=PARTICIPANTS)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--keep", action="store_true", help="keep the database (for EXPLAIN); prints its URL")
    parser.add_argument("--database", help="measure again on a database a --keep run left (no load)")
    parser.add_argument("--only", default="", help="with --database: only the searches whose name contains this")
    args = parser.parse_args(argv)
    if args.database:
        return again(args.database, args.seconds, args.only)
    server = postgres_server_url()
    if server is None:
        print("Million bench: skipped (set PEERLINK_BENCH_DATABASE_URL or PEERLINK_TEST_DATABASE_URL to PostgreSQL)")
        return {}
    print(
        f"Million bench: {args.participants:,} participants on PostgreSQL, {os.cpu_count()} CPUs; "
        f"load average {os.getloadavg()}"
    )
    url = asyncio.run(fresh_database(server, "peerlink_million"))
    try:
        with tempfile.TemporaryDirectory(prefix="peerlink-bench-million-") as tmp:
            env, key, report = build(url, Path(tmp), args.participants)
            print(
                f"{CONNECTIONS} connections, {args.seconds:.0f} s a search; latencies in ms; "
                f"target p99 < {TARGET_P99_MS:.0f}"
            )
            print(HEADER)
            results = measure(env, key, report, args.seconds, Path(tmp))
    finally:
        if args.keep:
            print(f"database kept: {url}")
        else:
            asyncio.run(drop_database(url))
    print(f"load average after: {os.getloadavg()}")
    figures = {"load_seconds": report.seconds, "resources": float(report.resources)}
    for result in results:
        figures[f"{result.name} p99"] = result.p99
    return figures


if __name__ == "__main__":
    main()
