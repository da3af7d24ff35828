"""The soak bench's run, short, on PostgreSQL: a gateway process, a worker process and the sandbox EHR under
the mixed load; every request answered 2xx, every change delivered, memory, fds and database connections
sampled, nothing logged as an error. (`tests/bench/bench_soak.py` runs it for 10 minutes.)"""

from __future__ import annotations

import pytest

from tests.bench.soak_support import run_soak
from tests.conftest import PG_URL

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(not PG_URL, reason="needs PEERLINK_TEST_DATABASE_URL (PostgreSQL)")]


def test_mixed_load_without_error_and_sampled(tmp_path):
    assert PG_URL
    run = run_soak(tmp_path, PG_URL, seconds=15, warmup=3)
    assert set(run.requests) == {"fhir", "peer read", "write"}, run.requests
    assert all(n > 0 for n in run.requests.values())
    assert run.errors == 0, run.failures
    assert not [f for f in run.failures if not f.startswith("sample")], run.failures
    assert run.statuses[201] > 0  # writes were made
    assert run.drained and run.outbox.get("delivered", 0) > 0 and set(run.outbox) == {"delivered"}, run.outbox
    kept = run.after_warmup()
    assert len(kept) >= 2
    for sample in kept:
        assert sample.rss["gateway"] > 10_000 and sample.rss["worker"] > 10_000  # kB: the processes were measured
        assert sample.fds["gateway"] > 3 and sample.connections >= 1
    assert not run.logged_errors, run.logged_errors
