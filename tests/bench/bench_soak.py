"""Soak: 10 minutes (``--minutes``) of reads, searches and writes mixed against a real gateway process and a
real worker delivering to the sandbox EHR, on a fresh PostgreSQL database (`tests/bench/soak_support.py`).

    python -m tests.bench.bench_soak [--minutes M] [--warmup-seconds W]      (make soak)

Needs PEERLINK_BENCH_DATABASE_URL or PEERLINK_TEST_DATABASE_URL (a PostgreSQL server); without one it says so
and exits 0. Printed: requests by kind, errors (target 0), the resident memory of the gateway and the worker
after warm-up and at the end with its growth (target < 10%), open file descriptors and connections to the
run's database (first and last sample after warm-up, and the most seen), and the outbox at the end.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from tests.bench.soak_support import run_soak
from tests.e2e.scale_support import postgres_server_url

TARGET_GROWTH = 0.10


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--warmup-seconds", type=float, default=60.0)
    args = parser.parse_args(argv)
    server = postgres_server_url()
    if server is None:
        print("Soak: skipped (set PEERLINK_BENCH_DATABASE_URL or PEERLINK_TEST_DATABASE_URL to PostgreSQL)")
        return {}
    seconds = args.minutes * 60
    print(
        f"Soak: {args.minutes:g} min of mixed reads, searches and writes (warm-up {args.warmup_seconds:.0f} s), "
        f"gateway + worker + sandbox EHR, PostgreSQL; {os.cpu_count()} CPUs, load average {os.getloadavg()}"
    )
    with tempfile.TemporaryDirectory(prefix="peerlink-bench-soak-") as tmp:
        run = run_soak(Path(tmp), server, seconds, args.warmup_seconds)
    print(f"requests: {dict(run.requests)}; statuses: {dict(run.statuses)}; errors: {run.errors}")
    for failure in run.failures[:5]:
        print(f"  {failure}")
    kept = run.after_warmup()
    figures: dict[str, float] = {"errors": float(run.errors)}
    if kept:
        first, last = kept[0], kept[-1]
        for role in first.rss:
            growth = run.growth(role)
            figures[f"{role}_growth"] = growth
            peak = max(s.rss[role] for s in kept)
            verdict = "yes" if growth < TARGET_GROWTH else "NO"
            print(
                f"{role:<8} RSS after warm-up {first.rss[role] / 1024:.1f} MiB, "
                f"at the end {last.rss[role] / 1024:.1f} MiB (peak {peak / 1024:.1f}), "
                f"growth {growth * 100:+.1f}% (< 10%: {verdict}); open fds "
                f"{first.fds[role]} -> {last.fds[role]} (max {max(s.fds[role] for s in kept)})"
            )
        print(
            f"database connections: {first.connections} -> {last.connections} "
            f"(max {max(s.connections for s in kept)}); {len(run.samples)} samples"
        )
    print(f"outbox at the end: {run.outbox} ({'emptied' if run.drained else 'NOT emptied'})")
    for role, text in run.logged_errors.items():
        print(f"errors logged by {role}:\n{text[-800:]}")
    print(f"load average after: {os.getloadavg()}")
    return figures


if __name__ == "__main__":
    main()
