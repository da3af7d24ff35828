"""service.audit.record: what the writer makes of a record before chaining it (pure, no database)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson

from service.audit.chain import GENESIS, canonical, join_parts, record_hash
from service.audit.record import AuditRecord, AuditUnavailable, chain_hashes, prepare, unavailable

WHEN = datetime(2026, 3, 1, 9, 30, 0, 123456, tzinfo=timezone(timedelta(hours=2)))


def test_text_columns_are_cut_to_their_limits_and_times_are_utc():
    item = prepare(AuditRecord("x" * 80, "read", "R", "0", client_id="c" * 150, address="a" * 120, recorded=WHEN))
    assert item.values["type"] == "x" * 40
    assert item.values["client_id"] == "c" * 100
    assert item.values["address"] == "a" * 100
    assert item.values["recorded"] == datetime(2026, 3, 1, 7, 30, 0, 123456, tzinfo=UTC)


def test_a_naive_time_is_taken_as_utc():
    item = prepare(AuditRecord("rest", "read", "R", "0", recorded=datetime(2026, 1, 1, 12)))
    assert item.values["recorded"] == datetime(2026, 1, 1, 12, tzinfo=UTC)


def test_detail_becomes_json_both_databases_give_back():
    ident = uuid.UUID(int=5)
    detail: dict[Any, Any] = {"nul": "a\x00b", "f": 1.5, "u": ident, "t": ("x", 2), "s": "\ud800", 3: True}
    item = prepare(AuditRecord("rest", "read", "R", "0", detail=detail))
    assert item.values["detail"] == {
        "nul": "a\ufffdb",
        "f": "1.5",
        "u": str(ident),
        "t": ["x", 2],
        "s": "?",
        "3": True,
    }
    assert item.detail_json == orjson.dumps(item.values["detail"], option=orjson.OPT_SORT_KEYS)


def test_clean_detail_is_kept_as_it_is():
    detail = {"patients": ["p1"], "status": 200}
    item = prepare(AuditRecord("rest", "read", "R", "0", detail=detail))
    assert item.values["detail"] is detail


def test_index_rows_come_from_the_detail():
    item = prepare(AuditRecord("rest", "read", "R", "0", detail={"patients": ["p1"], "entities": ["Goal/g1"]}))
    assert item.entities == [("patient", "p1"), ("entity", "Goal/g1")]


def test_chain_hashes_link_each_record_to_the_one_before():
    prepared = [prepare(AuditRecord("rest", "read", "R", "0", recorded=WHEN, detail={"i": i})) for i in range(3)]
    chained = chain_hashes(prepared, 10, GENESIS)
    assert [seq for _, seq, _, _ in chained] == [11, 12, 13]
    assert chained[0][2] == GENESIS
    assert chained[1][2] == chained[0][3]
    assert chained[2][2] == chained[1][3]
    for item, seq, prev, digest in chained:
        row = {**item.values, "seq": seq, "prev_hash": prev}
        assert join_parts(item.parts, seq, prev) == canonical(row)
        assert record_hash(row) == digest
    assert len({digest for *_, digest in chained}) == 3


def test_unavailable_is_a_503_caused_by_the_error():
    cause = RuntimeError("disk full")
    failure = unavailable(cause)
    assert isinstance(failure, AuditUnavailable)
    assert failure.status == 503
    assert failure.__cause__ is cause
