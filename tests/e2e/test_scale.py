"""Scale test on PostgreSQL, real processes on loopback: 2 gateway processes and 2 `peerlink worker`
processes on one fresh database, the sandbox EHR receiving the deliveries. 2,000 peer-API writes (1,000
finished sessions, 500 of them with a note created and signed), 16 in flight, each to the next gateway in
turn. No answer may be an error (no 5xx; a 4xx would be a mistake of this test), every change must be
delivered exactly once (every outbox row delivered; the sandbox holding each session and note once, at
version 1) and the audit chain must verify. Then a backlog: BACKLOG sessions with signed notes written
while no worker runs, delivered by both workers racing over a full queue, under the same checks. The run
is in `tests/e2e/scale_support.py`; the benchmark `tests/bench/bench_scale.py` times the same load with 1
and with 2 workers."""

from __future__ import annotations

import pytest

from tests.conftest import PG_URL
from tests.e2e.scale_support import SESSIONS_ALONE, SESSIONS_WITH_NOTES, WRITES, run_scale

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(not PG_URL, reason="needs PEERLINK_TEST_DATABASE_URL (PostgreSQL)")]
BACKLOG = 200


def test_two_gateways_two_workers_deliver_every_change_exactly_once(tmp_path):
    assert PG_URL
    run = run_scale(tmp_path, PG_URL, workers=2, backlog=BACKLOG)
    load, backlog = run.load, run.backlog
    assert backlog is not None
    print(
        f"\n{load.count} writes in {load.seconds:.1f} s ({load.per_second:.0f}/s); {len(load.changes)} changes "
        f"delivered in {run.deliver_seconds:.1f} s ({run.deliveries_per_second:.0f}/s); backlog of "
        f"{len(backlog.changes)} delivered in {run.backlog_seconds:.1f} s; audit: {run.audit}"
    )
    # every write answered 2xx: no 5xx, and no 4xx (which would be this test's mistake)
    assert load.count == WRITES >= 2000
    assert backlog.count == 3 * BACKLOG
    for writes in (load, backlog):
        assert not writes.failures, writes.failures
        assert all(200 <= status < 300 for status in writes.statuses), writes.statuses
    assert len(load.sessions) == SESSIONS_WITH_NOTES + SESSIONS_ALONE
    assert len(load.notes) == SESSIONS_WITH_NOTES
    assert len(backlog.sessions) == len(backlog.notes) == BACKLOG
    # the outbox fully delivered: the changes written, and anything queued before (nothing dead or waiting)
    assert run.drained and run.backlog_drained, run.outbox_after
    assert {state for _, state in run.outbox_after} <= {"delivered"}, run.outbox_after
    assert run.rows == {"delivered": len(run.sessions) + len(run.notes)}
    # exactly once at the EHR: as many new resources as changes, each of ours once, never sent twice
    assert run.sandbox_added == {"Encounter": len(run.sessions), "DocumentReference": len(run.notes)}
    assert set(run.versions) == {"Encounter", "DocumentReference"}
    for resource_type, seen in run.versions.items():
        wrong = {record_id: versions for record_id, versions in seen.items() if versions != ["1"]}
        assert not wrong, f"{resource_type}: {len(wrong)} not held once at version 1, e.g. {list(wrong.items())[:3]}"
    # no audit chain break, with both gateways and both workers appending to it
    assert run.audit is not None
    assert run.audit.ok, f"{run.audit.how}: {run.audit.output}"
    assert not run.logs, run.logs
    # and the EHR answered every request of the workers (and of the read-back) without an error
    assert run.ehr_statuses, "no FHIR request in the sandbox log"
    assert all(200 <= status < 300 for status in run.ehr_statuses), run.ehr_statuses
