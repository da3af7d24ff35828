"""Scale benchmark on PostgreSQL: 2 gateway processes, the sandbox EHR, and 1 then 2 `peerlink worker`
processes, each run on a fresh database, real processes on loopback.

    python -m tests.bench.bench_scale

Needs a PostgreSQL server: PEERLINK_BENCH_DATABASE_URL or PEERLINK_TEST_DATABASE_URL (any database URL
of the server, e.g. postgresql+asyncpg://postgres@127.0.0.1:5432/test; databases are created and dropped
beside it). Without one it says so and exits 0.

The load (see `tests/e2e/scale_support.py`): 2,000 peer-API writes, 16 in flight, spread over both
gateways (1,000 finished sessions, 500 with a note created and signed), while the workers deliver the
1,500 changes to the sandbox. Prints writes/s (both gateways together, first write sent to last answer),
deliveries/s (changes delivered, from the first write sent until the outbox is empty) and the ratio
2 workers / 1 worker. `tests/e2e/test_scale.py` checks the same run for correctness.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from tests.e2e.scale_support import (
    CONCURRENCY,
    GATEWAYS,
    PARTICIPANTS,
    WRITES,
    ScaleRun,
    postgres_server_url,
    run_scale,
)


def main() -> dict[str, float]:
    server = postgres_server_url()
    if server is None:
        print(
            "Scale benchmark: skipped (set PEERLINK_BENCH_DATABASE_URL or PEERLINK_TEST_DATABASE_URL to a "
            "PostgreSQL server, e.g. postgresql+asyncpg://postgres@127.0.0.1:5432/test)"
        )
        return {}
    print(
        f"Scale benchmark: {WRITES} peer-API writes, {CONCURRENCY} in flight over {GATEWAYS} gateway processes, "
        f"{PARTICIPANTS} consenting participants, deliveries to the sandbox EHR; PostgreSQL, loopback, "
        f"{os.cpu_count()} CPUs"
    )
    print(
        f"{'workers':<9}{'writes':>8}{'seconds':>9}{'writes/s':>10}{'p50 ms':>8}{'p99 ms':>8}"
        f"{'changes':>9}{'seconds':>9}{'deliveries/s':>14}{'errors':>8}"
    )
    runs: dict[int, ScaleRun] = {}
    with tempfile.TemporaryDirectory(prefix="peerlink-bench-scale-") as tmp:
        for workers in (1, 2):
            run = run_scale(Path(tmp) / f"workers-{workers}", server, workers, verify=False)
            runs[workers] = run
            errors = sum(n for status, n in run.statuses.items() if status >= 300)
            undelivered = "" if run.drained else "  (outbox NOT drained)"
            print(
                f"{workers:<9}{run.writes:>8}{run.write_seconds:>9.1f}{run.writes_per_second:>10.0f}"
                f"{run.latency_ms(0.5):>8.0f}{run.latency_ms(0.99):>8.0f}"
                f"{run.changes:>9}{run.deliver_seconds:>9.1f}{run.deliveries_per_second:>14.0f}{errors:>8}{undelivered}"
            )
            for failure in run.failures[:3]:
                print(f"  {failure}")
    one, two = runs[1], runs[2]
    results = {
        "writes_per_second_1": one.writes_per_second,
        "writes_per_second_2": two.writes_per_second,
        "deliveries_per_second_1": one.deliveries_per_second,
        "deliveries_per_second_2": two.deliveries_per_second,
        "writes_ratio": two.writes_per_second / one.writes_per_second if one.writes_per_second else 0.0,
        "deliveries_ratio": (
            two.deliveries_per_second / one.deliveries_per_second if one.deliveries_per_second else 0.0
        ),
    }
    print(
        f"ratio 2 workers / 1 worker: writes/s {results['writes_ratio']:.2f}x, "
        f"deliveries/s {results['deliveries_ratio']:.2f}x"
    )
    return results


if __name__ == "__main__":
    main()
    sys.exit(0)
