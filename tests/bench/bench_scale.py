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
- flat out/s: what the workers deliver when they are the bottleneck: after the load, the 1,500 changes
  queued again as if the EHR had lost them all (outbox rows back to pending, the record of what the EHR
  holds emptied) and delivered again, timed from the moment the waiting workers may start;
- where the CPU went during the load, per kind of process (postgres: the backends of the run's database),
  for the whole machine, and for the machine's other processes: on a shared machine the figures move
  with what else runs (a large "others" marks a run to repeat).
and the ratios 2 workers / 1 worker.
"""

from __future__ import annotations

import os
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


def _ratio(two: float, one: float) -> float:
    return two / one if one else 0.0


def main() -> dict[str, float]:
    server = postgres_server_url()
    if server is None:
        print(
            "Scale benchmark: skipped (set PEERLINK_BENCH_DATABASE_URL or PEERLINK_TEST_DATABASE_URL to a "
            "PostgreSQL server, e.g. postgresql+asyncpg://postgres@127.0.0.1:5432/test)"
        )
        return {}
    print(
        f"Scale benchmark: {WRITES} peer-API writes, {CONCURRENCY} in flight over {GATEWAYS} gateway processes "
        f"({PARTICIPANTS} consenting participants) while the workers deliver to the sandbox EHR; then the same "
        f"changes delivered again, flat out; PostgreSQL, loopback, {os.cpu_count()} CPUs"
    )
    print(
        f"{'workers':<9}{'writes/s':>9}{'p50 ms':>8}{'p99 ms':>8}{'changes':>9}{'deliveries/s':>14}{'lag s':>7}"
        f"{'flat out/s':>12}{'errors':>8}   CPU s during the load (wall s)"
    )
    runs: dict[int, ScaleRun] = {}
    with tempfile.TemporaryDirectory(prefix="peerlink-bench-scale-") as tmp:
        for workers in (1, 2):
            run = run_scale(Path(tmp) / f"workers-{workers}", server, workers, verify=False, redeliver=True)
            runs[workers] = run
            load = run.load
            errors = sum(n for status, n in load.statuses.items() if not 200 <= status < 300)
            errors += sum(n for status, n in run.ehr_statuses.items() if not 200 <= status < 300)
            used = dict(run.cpu)
            if used.get("machine"):  # what else the machine did meanwhile: other processes than this run's
                used["others"] = used["machine"] - sum(v for k, v in used.items() if k != "machine")
            cpu = ", ".join(f"{role} {seconds:.1f}" for role, seconds in used.items())
            print(
                f"{workers:<9}{load.per_second:>9.0f}{load.latency_ms(0.5):>8.0f}{load.latency_ms(0.99):>8.0f}"
                f"{len(load.changes):>9}{run.deliveries_per_second:>14.0f}{run.deliver_seconds - load.seconds:>7.1f}"
                f"{run.redeliveries_per_second:>12.0f}{errors:>8}   {cpu} ({run.window_seconds:.1f})"
            )
            if not (run.drained and run.redeliver_drained):
                print(f"  the outbox was NOT emptied: {run.outbox_after}")
            for failure in load.failures[:3]:
                print(f"  {failure}")
            if run.logs:
                print(f"  errors logged by: {', '.join(run.logs)}")
    one, two = runs[1], runs[2]
    results = {
        "writes_per_second_1": one.load.per_second,
        "writes_per_second_2": two.load.per_second,
        "deliveries_per_second_1": one.deliveries_per_second,
        "deliveries_per_second_2": two.deliveries_per_second,
        "flat_out_per_second_1": one.redeliveries_per_second,
        "flat_out_per_second_2": two.redeliveries_per_second,
    }
    results["writes_ratio"] = _ratio(two.load.per_second, one.load.per_second)
    results["deliveries_ratio"] = _ratio(two.deliveries_per_second, one.deliveries_per_second)
    results["flat_out_ratio"] = _ratio(two.redeliveries_per_second, one.redeliveries_per_second)
    print(
        f"ratio 2 workers / 1 worker: writes/s {results['writes_ratio']:.2f}x, deliveries/s "
        f"{results['deliveries_ratio']:.2f}x, flat-out deliveries/s {results['flat_out_ratio']:.2f}x"
    )
    return results


if __name__ == "__main__":
    main()
