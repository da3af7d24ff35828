"""Scale benchmark on PostgreSQL: 2 gateway processes, the sandbox EHR, and 1 then 2 `peerlink worker`
processes, each run on a fresh database; real processes on loopback.

    python -m tests.bench.bench_scale

Needs a PostgreSQL server: PEERLINK_BENCH_DATABASE_URL or PEERLINK_TEST_DATABASE_URL (any database URL
of the server, e.g. postgresql+asyncpg://postgres@127.0.0.1:5432/test; the databases are created beside
it and dropped). Without one it says so and exits 0.

The load (`tests/e2e/scale_support.py`; `tests/e2e/test_scale.py` checks its correctness): 2,000 peer-API
writes, 16 in flight, spread over both gateways (1,000 finished sessions, 500 with a note created and
signed), while the workers deliver the 1,500 changes to the sandbox. Printed, with 1 and with 2 workers:
- writes/s: both gateways together, from the first write sent to the last answered (p50/p99 latency);
- deliveries/s: the load's changes over the time from the first write sent until the outbox is empty
  (while the workers keep up, this follows writes/s; "lag" is how long the outbox took to empty after
  the last write was answered);
- backlog/s: what the workers deliver flat out: BACKLOG sessions with signed notes written while no
  worker runs, then delivered (the outbox is held locked until the workers have started);
- where the CPU went during the load, per kind of process, and for the whole machine (PostgreSQL and
  whatever else runs on it included: on a shared machine the figures move with it).
and the ratios 2 workers / 1 worker.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections import Counter
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

BACKLOG = 250  # sessions with signed notes: 750 writes, 500 changes


def _ratio(two: float, one: float) -> float:
    return two / one if one else 0.0


def main(backlog: int = BACKLOG) -> dict[str, float]:
    server = postgres_server_url()
    if server is None:
        print(
            "Scale benchmark: skipped (set PEERLINK_BENCH_DATABASE_URL or PEERLINK_TEST_DATABASE_URL to a "
            "PostgreSQL server, e.g. postgresql+asyncpg://postgres@127.0.0.1:5432/test)"
        )
        return {}
    print(
        f"Scale benchmark: {WRITES} peer-API writes, {CONCURRENCY} in flight over {GATEWAYS} gateway processes "
        f"({PARTICIPANTS} consenting participants) while the workers deliver to the sandbox EHR; then a backlog "
        f"of {2 * backlog} changes; PostgreSQL, loopback, {os.cpu_count()} CPUs"
    )
    print(
        f"{'workers':<9}{'writes/s':>9}{'p50 ms':>8}{'p99 ms':>8}{'changes':>9}{'deliveries/s':>14}{'lag s':>7}"
        f"{'backlog/s':>11}{'errors':>8}   CPU s during the load (wall s)"
    )
    runs: dict[int, ScaleRun] = {}
    with tempfile.TemporaryDirectory(prefix="peerlink-bench-scale-") as tmp:
        for workers in (1, 2):
            run = run_scale(Path(tmp) / f"workers-{workers}", server, workers, verify=False, backlog=backlog)
            runs[workers] = run
            load = run.load
            statuses = load.statuses + (run.backlog.statuses if run.backlog else Counter())
            errors = sum(n for status, n in statuses.items() if not 200 <= status < 300)
            cpu = ", ".join(f"{role} {seconds:.1f}" for role, seconds in run.cpu.items())
            print(
                f"{workers:<9}{load.per_second:>9.0f}{load.latency_ms(0.5):>8.0f}{load.latency_ms(0.99):>8.0f}"
                f"{len(load.changes):>9}{run.deliveries_per_second:>14.0f}{run.deliver_seconds - load.seconds:>7.1f}"
                f"{run.backlog_per_second:>11.0f}{errors:>8}   {cpu} ({run.window_seconds:.1f})"
            )
            if not (run.drained and (run.backlog is None or run.backlog_drained)):
                print(f"  the outbox was NOT emptied: {run.outbox_after}")
            for failure in [*load.failures, *(run.backlog.failures if run.backlog else [])][:3]:
                print(f"  {failure}")
    one, two = runs[1], runs[2]
    results = {
        "writes_per_second_1": one.load.per_second,
        "writes_per_second_2": two.load.per_second,
        "deliveries_per_second_1": one.deliveries_per_second,
        "deliveries_per_second_2": two.deliveries_per_second,
        "backlog_per_second_1": one.backlog_per_second,
        "backlog_per_second_2": two.backlog_per_second,
    }
    results["writes_ratio"] = _ratio(two.load.per_second, one.load.per_second)
    results["deliveries_ratio"] = _ratio(two.deliveries_per_second, one.deliveries_per_second)
    results["backlog_ratio"] = _ratio(two.backlog_per_second, one.backlog_per_second)
    print(
        f"ratio 2 workers / 1 worker: writes/s {results['writes_ratio']:.2f}x, deliveries/s "
        f"{results['deliveries_ratio']:.2f}x, backlog deliveries/s {results['backlog_ratio']:.2f}x"
    )
    return results


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else BACKLOG)
