"""The search keyset cursor (service.fhir.search.cursor): what the server issues comes back as the same
cursor for the same sort; anything else, tampered with or meant for another sort, is a 400."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.domain.errors import BadRequest
from service.fhir.search import Cursor, Sort, decode_cursor, encode_cursor

PK_SORT = Sort("")
DATE_DESC = Sort("-date", "date", descending=True)
UPDATED = Sort("_lastUpdated", "_lastUpdated")

pks = st.integers(min_value=0, max_value=2**63 - 1)
zones = st.integers(min_value=-14 * 60, max_value=14 * 60).map(lambda m: timezone(timedelta(minutes=m)))
keys = st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=zones)


def raw(payload: object) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(payload)).decode().rstrip("=")


@given(pk=pks, snapshot=pks)
def test_a_pk_cursor_round_trips(pk, snapshot):
    cursor = Cursor("", None, pk, snapshot)
    text = encode_cursor(cursor)
    assert "=" not in text and "+" not in text and "/" not in text  # fits a query string as it is
    assert decode_cursor(text, PK_SORT) == cursor


@given(key=keys, pk=pks, snapshot=pks, sort=st.sampled_from([DATE_DESC, UPDATED]))
def test_a_keyed_cursor_round_trips_to_the_same_instant_in_utc(key, pk, snapshot, sort):
    decoded = decode_cursor(encode_cursor(Cursor(sort.text, key, pk, snapshot)), sort)
    assert decoded == Cursor(sort.text, key.astimezone(UTC), pk, snapshot)
    assert decoded.key is not None and decoded.key.tzinfo is UTC


@given(pk=pks, snapshot=pks)
def test_a_cursor_is_only_good_for_the_sort_it_was_issued_for(pk, snapshot):
    keyed = encode_cursor(Cursor("-date", datetime(2026, 1, 5, tzinfo=UTC), pk, snapshot))
    plain = encode_cursor(Cursor("", None, pk, snapshot))
    for text, sort in ((keyed, PK_SORT), (keyed, UPDATED), (plain, DATE_DESC), (keyed, Sort("date", "date"))):
        with pytest.raises(BadRequest) as caught:
            decode_cursor(text, sort)
        assert caught.value.errors == [{"expression": "_cursor"}]


GOOD = {"s": "", "k": None, "p": 7, "n": 3}


@pytest.mark.parametrize(
    ("text", "sort"),
    [
        ("", PK_SORT),
        ("not base64!", PK_SORT),
        (base64.urlsafe_b64encode(b"not json").decode(), PK_SORT),
        (raw([1, 2, 3]), PK_SORT),
        (raw({k: v for k, v in GOOD.items() if k != "n"}), PK_SORT),
        (raw({**GOOD, "x": 1}), PK_SORT),
        (raw({**GOOD, "p": -1}), PK_SORT),
        (raw({**GOOD, "p": 2**63}), PK_SORT),
        (raw({**GOOD, "p": "7"}), PK_SORT),
        (raw({**GOOD, "p": 7.0}), PK_SORT),
        (raw({**GOOD, "p": True}), PK_SORT),
        (raw({**GOOD, "n": -5}), PK_SORT),
        (raw({**GOOD, "k": "2026-01-05T00:00:00+00:00"}), PK_SORT),  # a key on a pk-ordered search
        (raw({**GOOD, "s": "-date", "k": None}), DATE_DESC),  # a keyed sort without its key
        (raw({**GOOD, "s": "-date", "k": "2026-01-05T00:00:00"}), DATE_DESC),  # no zone
        (raw({**GOOD, "s": "-date", "k": "yesterday"}), DATE_DESC),
        (raw({**GOOD, "s": "-date", "k": 20260105}), DATE_DESC),
        (raw({**GOOD, "s": "x" * 300}), Sort("x" * 300)),  # longer than any cursor this server issues
    ],
)
def test_tampered_cursors_are_refused(text, sort):
    with pytest.raises(BadRequest, match="_cursor is not one this server issued"):
        decode_cursor(text, sort)


def test_the_untampered_payloads_those_were_made_from_decode():
    assert decode_cursor(raw(GOOD), PK_SORT) == Cursor("", None, 7, 3)
    assert decode_cursor(raw({**GOOD, "s": "x" * 200}), Sort("x" * 200)).pk == 7
    keyed = {**GOOD, "s": "-date", "k": "2026-01-05T01:00:00+01:00"}
    assert decode_cursor(raw(keyed), DATE_DESC) == Cursor("-date", datetime(2026, 1, 5, tzinfo=UTC), 7, 3)


@given(st.text(max_size=500))
def test_any_text_decodes_or_is_a_400(text):
    try:
        cursor = decode_cursor(text, DATE_DESC)
    except BadRequest:
        return
    assert cursor.sort == "-date" and cursor.key is not None and cursor.key.tzinfo is UTC


@given(pk=pks, snapshot=pks, position=st.integers(min_value=0), replacement=st.sampled_from("AZaz09-_"))
def test_a_changed_character_is_a_400_or_still_a_well_formed_cursor(pk, snapshot, position, replacement):
    text = encode_cursor(Cursor("", None, pk, snapshot))
    index = position % len(text)
    changed = text[:index] + replacement + text[index + 1 :]
    try:
        decoded = decode_cursor(changed, PK_SORT)
    except BadRequest:
        return
    # base64 may absorb a change in the padding bits, or turn one digit into another: still a well-formed cursor
    assert decoded.sort == "" and decoded.key is None
    assert 0 <= decoded.pk < 2**63 and 0 <= decoded.snapshot < 2**63


@given(pk=pks, snapshot=pks, total=st.one_of(st.none(), pks))
def test_the_first_pages_total_rides_in_the_cursor(pk, snapshot, total):
    cursor = Cursor("", None, pk, snapshot, total)
    assert decode_cursor(encode_cursor(cursor), PK_SORT) == cursor


@pytest.mark.parametrize("total", [-1, 2**63, "12", 1.5, True])
def test_a_tampered_total_is_refused(total):
    with pytest.raises(BadRequest):
        decode_cursor(raw({"s": "", "k": None, "p": 1, "n": 1, "t": total}), PK_SORT)
