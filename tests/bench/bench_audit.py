"""What auditing every read costs: read throughput with the audit of reads on and off, same run.

    python -m tests.bench.bench_audit [SECONDS]

Starts, on 127.0.0.1 only, on one temporary SQLite database (`peerlink migrate`, `peerlink seed`;
PEERLINK_BENCH_DATABASE_URL measures on another, empty database, e.g. PostgreSQL), two gateway
processes that differ in one setting: PEERLINK_AUDIT_READS=false and PEERLINK_AUDIT_READS=true
(every read and search then commits its AuditEvent before the response is released). Both take the
same bearer tokens (one keys folder, one public URL). The load generator of bench_fhir_api (its own
process, 32 keep-alive connections) drives each scenario — a read of a Patient by id, a 20-resource
Encounter search — against the two gateways in turn, off/on/off/on, and keeps each gateway's better
round. It prints requests/s and p50/p99 latency, the throughput lost with auditing on (target: at
most 15%), checks that the audited gateway wrote one audit record per request it answered, and that
the chain still verifies after the load.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx

from tests.bench.bench_fhir_api import CONNECTIONS, HOST, PEERLINK, free_port, load, started

OVERHEAD_TARGET = 0.15
ROUNDS = 2


async def _audit_state(url: str) -> tuple[int, str]:
    """(records in the live audit log, verify summary)."""
    from sqlalchemy import func, select

    from service.audit.verify import verify
    from service.store import Database
    from service.store.tables import audit_log

    database = Database(url)
    try:
        async with database.engine.connect() as conn:
            count = int((await conn.execute(select(func.count()).select_from(audit_log))).scalar() or 0)
        report = await verify(database)
        return count, report.summary()
    finally:
        await database.dispose()


def audit_state(url: str) -> tuple[int, str]:
    return asyncio.run(_audit_state(url))


def overhead(on: dict[str, Any], off: dict[str, Any]) -> float:
    """Share of the read throughput lost with auditing on."""
    return 1 - float(on["rps"]) / float(off["rps"]) if off["rps"] else 0.0


def best(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return max(runs, key=lambda r: float(r["rps"]))


def _scenarios(base: str, token: str) -> list[tuple[str, str]]:
    auth = {"Authorization": f"Bearer {token}"}
    history = httpx.get(f"{base}/fhir/Patient/_history", params={"_count": 1}, headers=auth).json()
    patient_id = history["entry"][0]["resource"]["id"]
    found = [
        ("read Patient by id", f"/fhir/Patient/{patient_id}"),
        ("search Encounter, 20", "/fhir/Encounter?_count=20"),
    ]
    for label, path in found:
        response = httpx.get(base + path, headers=auth)
        if response.status_code != 200:
            raise RuntimeError(f"{label}: HTTP {response.status_code} {response.text[:300]}")
    return found


def main(seconds: float = 3.0) -> dict[str, float]:
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="peerlink-bench-audit-") as tmp:
        workdir = Path(tmp)
        on_port, off_port = free_port(), free_port()
        url = os.environ.get("PEERLINK_BENCH_DATABASE_URL", f"sqlite+aiosqlite:///{workdir}/peerlink.db")
        env = {
            **os.environ,
            "PEERLINK_DATABASE_URL": url,
            "PEERLINK_LOG_LEVEL": "WARNING",
            "PEERLINK_HOST": HOST,
            "PEERLINK_PORT": str(on_port),
            "PEERLINK_PUBLIC_URL": f"http://{HOST}:{on_port}",  # one issuer and audience for both
            "PEERLINK_KEYS_DIR": str(workdir / "keys"),
            "PEERLINK_ACCESS_TOKEN_SECONDS": "3600",
            "PEERLINK_AUDIT_READS": "true",
        }
        off_env = {**env, "PEERLINK_PORT": str(off_port), "PEERLINK_AUDIT_READS": "false"}
        for step in ("migrate", "seed"):
            subprocess.run([PEERLINK, step], env=env, check=True, capture_output=True, timeout=120)
        on_base, off_base = f"http://{HOST}:{on_port}", f"http://{HOST}:{off_port}"
        with (
            started([PEERLINK, "serve"], env, f"{on_base}/readyz", workdir / "audited.log"),
            started([PEERLINK, "serve"], off_env, f"{off_base}/readyz", workdir / "unaudited.log"),
        ):
            token = subprocess.run(
                [PEERLINK, "token"], env=env, check=True, capture_output=True, text=True, timeout=60
            ).stdout.strip()
            runnable = _scenarios(on_base, token)
            print(f"audit of reads: {CONNECTIONS} connections, {seconds:.1f} s per run, best of {ROUNDS} rounds")
            print(f"{'scenario':<24}{'audit':>6}{'req/s':>9}{'p50 ms':>8}{'p99 ms':>8}")
            audited_requests = 0
            before, _ = audit_state(url)
            for label, path in runnable:
                runs: dict[str, list[dict[str, Any]]] = {"off": [], "on": []}
                for _ in range(ROUNDS):
                    runs["off"].append(load(off_port, path, seconds, token=token))
                    runs["on"].append(load(on_port, path, seconds, token=token))
                for run in runs["on"]:
                    # the warm-up requests are answered (and audited) but not counted in "requests"
                    audited_requests += int(run["requests"])
                if any(r["errors"] for rs in runs.values() for r in rs):
                    print(f"{label:<24}errors under load: {[r['errors'] for rs in runs.values() for r in rs]}")
                    continue
                off, on = best(runs["off"]), best(runs["on"])
                for name, figures in (("off", off), ("on", on)):
                    print(
                        f"{label if name == 'off' else '':<24}{name:>6}{figures['rps']:>9.0f}"
                        f"{figures['p50_ms']:>8.1f}{figures['p99_ms']:>8.1f}"
                    )
                key = "read" if path.startswith("/fhir/Patient/") else "search"
                results[key] = overhead(on, off)
                print(f"{'':<24}auditing costs {results[key]:+.1%} of the throughput")
            after, verified = audit_state(url)
        written = after - before
        print(f"audit records written while measuring: {written} (audited requests counted: {audited_requests})")
        print(f"after the load: {verified}")
        if written < audited_requests:
            print("reads were NOT audited: the API call sites or PEERLINK_AUDIT_READS are not wired yet")
            results = {}
    for key in ("read", "search"):
        if key in results:
            verdict = "meets" if results[key] <= OVERHEAD_TARGET else "ABOVE"
            print(f"audit overhead {key} = {results[key]:.1%} (target <= {OVERHEAD_TARGET:.0%}): {verdict}")
        else:
            print(f"audit overhead {key}: not measured")
    return results


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 3.0)
