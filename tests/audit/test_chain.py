"""The chain's canonical form and the checker's verdicts, on records built in memory."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.audit.chain import (
    GENESIS,
    HASHED_COLUMNS,
    ChainChecker,
    canonical,
    canonical_parts,
    entities_of,
    instant,
    join_parts,
    record_hash,
)


def chain(n: int, *, first: int = 1, prev: str = GENESIS) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        row = {
            "seq": first + i,
            "recorded": datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=i),
            "program_id": "prog",
            "type": "rest",
            "subtype": "read",
            "action": "R",
            "outcome": "0",
            "client_id": "c",
            "organization": None,
            "address": "10.0.0.1",
            "detail": {"entities": [f"Encounter/{i}"], "n": i},
            "prev_hash": prev,
        }
        row["hash"] = prev = record_hash(row)
        out.append(row)
    return out


def check(rows: list[dict[str, Any]], first: int = 1, prev: str = GENESIS):
    checker = ChainChecker(first, prev)
    checker.feed_all(rows)
    return checker.finish(), checker


def test_an_intact_chain_verifies():
    problem, checker = check(chain(5))
    assert problem is None
    assert checker.checked == 5
    assert checker.last_seq == 5


def test_canonical_form_is_sorted_compact_json_of_every_column_but_the_hash():
    row = chain(1)[0]
    text = canonical(row)
    assert text.startswith(b'{"action":"R","address":"10.0.0.1","client_id":"c","detail":{"entities"')
    assert b'"recorded":"2026-01-01T00:00:00.000000Z"' in text
    assert b'"hash"' not in text
    assert set(HASHED_COLUMNS) | {"hash"} == set(row)


@pytest.mark.parametrize("column", HASHED_COLUMNS)
def test_every_column_is_covered_by_the_hash(column):
    row = chain(1)[0]
    changed = dict(row)
    value = row[column]
    if isinstance(value, datetime):
        changed[column] = value + timedelta(microseconds=1)
    elif isinstance(value, int):
        changed[column] = value + 1
    elif isinstance(value, dict):
        changed[column] = {**value, "n": 99}
    else:
        changed[column] = (value or "") + "x"
    assert record_hash(changed) != row["hash"]


def test_a_changed_record_is_named():
    rows = chain(6)
    rows[2]["outcome"] = "4"
    problem, _ = check(rows)
    assert problem is not None
    assert (problem.seq, problem.kind) == (3, "changed")
    assert "record 3 was changed" in problem.message


def test_a_changed_last_record_is_named():
    rows = chain(3)
    rows[2]["detail"] = {"entities": ["Patient/other"]}
    problem, _ = check(rows)
    assert (problem.seq, problem.kind) == (3, "changed")


def test_removed_records_are_named():
    rows = chain(6)
    del rows[2]
    problem, _ = check(rows)
    assert (problem.seq, problem.kind) == (3, "removed")
    assert "record 3 was removed" in problem.message
    rows = chain(8)
    del rows[2:5]
    problem, _ = check(rows)
    assert (problem.seq, problem.kind) == (3, "removed")
    assert "records 3..5 were removed" in problem.message


def test_the_first_record_removed_is_caught_from_the_genesis():
    problem, _ = check(chain(4)[1:])
    assert (problem.seq, problem.kind) == (1, "removed")


def test_a_forged_record_with_a_correct_hash_and_renumbered_successors_is_named_inserted():
    rows = chain(6)
    forged = {**rows[2], "seq": 3, "client_id": "intruder", "prev_hash": rows[1]["hash"]}
    forged["hash"] = record_hash(forged)
    shifted = [{**r, "seq": r["seq"] + 1} for r in rows[2:]]
    problem, _ = check([*rows[:2], forged, *shifted])
    assert (problem.seq, problem.kind) == (3, "inserted")


def test_a_record_appended_without_the_chain_is_named_inserted():
    rows = chain(4)
    forged = {**rows[1], "seq": 5, "prev_hash": rows[1]["hash"]}  # replays an old link
    forged["hash"] = record_hash(forged)
    problem, _ = check([*rows, forged])
    assert (problem.seq, problem.kind) == (5, "inserted")


def test_a_record_slipped_in_with_a_made_up_hash_is_named_inserted():
    rows = chain(5)
    forged = {**rows[2], "seq": 3, "prev_hash": rows[1]["hash"], "hash": "f" * 64}
    shifted = [{**r, "seq": r["seq"] + 1} for r in rows[2:]]
    problem, _ = check([*rows[:2], forged, *shifted])
    assert (problem.seq, problem.kind) == (3, "inserted")


def test_a_record_below_the_start_is_inserted():
    rows = chain(3, first=10, prev="a" * 64)
    problem, _ = check([{**rows[0], "seq": 9}, *rows], first=10, prev="a" * 64)
    assert (problem.seq, problem.kind) == (9, "inserted")


def test_the_chain_starts_from_an_anchor():
    rows = chain(3, first=101, prev="b" * 64)
    assert check(rows, first=101, prev="b" * 64)[0] is None
    problem, _ = check(rows, first=101, prev="c" * 64)
    assert (problem.seq, problem.kind) == (101, "inserted")


def test_the_index_rows_come_from_patients_and_entities():
    detail = {"patients": ["p1", "Patient/p2"], "entities": ["Patient/p3", "Encounter/e1", "Encounter/e1"], "x": 1}
    assert entities_of(detail) == [
        ("patient", "p1"),
        ("patient", "p2"),
        ("patient", "p3"),
        ("entity", "Encounter/e1"),
    ]
    assert entities_of({"patients": "not-a-list", "entities": [None, 3]}) == []
    assert entities_of(detail, "search") == [("patient", "p1"), ("patient", "p2"), ("patient", "p3")]


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3),
    max_leaves=8,
)
_KEYS = st.sampled_from(["prev_hash", "seq", "detail", "type", "x"]) | st.text(max_size=10)
_TEXT = st.none() | st.text(max_size=20) | st.sampled_from(['"prev_hash":"",', '"seq":0,', '\\"seq\\":0,'])


@settings(max_examples=300, deadline=None)
@given(
    detail=st.dictionaries(_KEYS, _JSON | st.sampled_from(["", 0]), max_size=4),
    texts=st.lists(_TEXT, min_size=7, max_size=7),
    recorded=st.datetimes(min_value=datetime(1, 1, 2), timezones=st.just(UTC)),
    seq=st.integers(1, 2**40),
    prev=st.text("0123456789abcdef", min_size=64, max_size=64),
)
def test_the_canonical_parts_joined_are_the_canonical_form(detail, texts, recorded, seq, prev):
    """Whatever the detail holds (members named prev_hash or seq included), the parts the writers
    join around prev_hash and seq make exactly the canonical form, with the detail given either way."""
    names = ("program_id", "type", "subtype", "action", "outcome", "client_id", "organization", "address")
    row = dict(zip(names, [*texts, texts[0]], strict=True))
    row |= {"recorded": recorded, "detail": detail, "seq": seq, "prev_hash": prev}
    detail_json = orjson.dumps(detail, option=orjson.OPT_SORT_KEYS)
    expected = canonical(row)
    assert join_parts(canonical_parts(row), seq, prev) == expected
    assert join_parts(canonical_parts({**row, "detail": orjson.Fragment(detail_json)}), seq, prev) == expected
    assert join_parts(canonical_parts({**row, "detail": None}, detail_json), seq, prev) == expected


@given(st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=-3)), timezone(timedelta(hours=9))])))
def test_the_canonical_instant_is_strftimes(moment):
    try:
        expected = moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    except OverflowError:
        with pytest.raises(OverflowError):
            instant(moment)
        return
    assert instant(moment) == expected
