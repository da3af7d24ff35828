"""The hash chain of the audit log: the canonical form of a record, its hash, and the checker that
walks a chain and names the first record that was changed, removed or inserted.

A record's hash is SHA-256 over the canonical JSON (orjson, keys sorted at every level, no spaces) of
every column but ``hash`` itself: ``seq``, ``recorded`` (UTC, ``YYYY-MM-DDTHH:MM:SS.ffffffZ``),
``program_id``, ``type``, ``subtype``, ``action``, ``outcome``, ``client_id``, ``organization``,
``address``, ``detail`` and ``prev_hash``, the hash of record ``seq - 1``. The first record's
predecessor is :data:`GENESIS`, or, once older records are archived, the anchor: the hash of the last
archived record. Anyone can recompute a hash from an exported row with nothing but this rule.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

GENESIS = "0" * 64
"""The predecessor hash of record 1."""

HASHED_COLUMNS = (
    "seq",
    "recorded",
    "program_id",
    "type",
    "subtype",
    "action",
    "outcome",
    "client_id",
    "organization",
    "address",
    "detail",
    "prev_hash",
)
STORED_COLUMNS = (*HASHED_COLUMNS, "hash")


def instant(value: datetime) -> str:
    """The canonical text of ``recorded``: UTC with microseconds (what both databases keep)."""
    value = value.astimezone(UTC)
    if value.year < 1000:  # strftime's %Y may not pad it to four digits
        return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ" % (  # noqa: UP031 (faster than an f-string here)
        value.year,
        value.month,
        value.day,
        value.hour,
        value.minute,
        value.second,
        value.microsecond,
    )


def parse_instant(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def canonical(row: Mapping[str, Any]) -> bytes:
    document = {name: row[name] for name in HASHED_COLUMNS}
    recorded = document["recorded"]
    if isinstance(recorded, datetime):
        document["recorded"] = instant(recorded)
    return orjson.dumps(document, option=orjson.OPT_SORT_KEYS)


def record_hash(row: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical(row)).hexdigest()


_HEAD = ("action", "address", "client_id", "detail", "organization", "outcome")
_MIDDLE = ("program_id", "recorded")
_TAIL = ("subtype", "type")
assert sorted(HASHED_COLUMNS) == [*_HEAD, "prev_hash", *_MIDDLE, "seq", *_TAIL]


_PREV_HASH = b'"prev_hash":"",'
_SEQ = b'"seq":0,'


def canonical_parts(row: Mapping[str, Any], detail_json: bytes | None = None) -> tuple[bytes, bytes, bytes]:
    """The canonical form around the two values only known under the chain lock, prev_hash and seq:
    ``head + b'"prev_hash":"' + prev_hash + b'",' + middle + b'"seq":' + seq + b',' + tail`` is
    :func:`canonical` (the PostgreSQL writer joins them in the database, see migration 0005).
    ``row["detail"]`` may be an ``orjson.Fragment`` of the detail's canonical JSON, or that JSON given as
    ``detail_json`` (then ``row["detail"]`` is not read).

    One document is made with an empty prev_hash and seq 0 and cut at those two members: the last
    ``"prev_hash":"",`` and ``"seq":0,`` in it are the top-level members (the key order is sorted;
    only ``detail``, before them, may hold such a member, and a string value cannot, its quotes
    being escaped)."""
    recorded = row["recorded"]
    document = orjson.dumps(
        {
            "action": row["action"],
            "address": row["address"],
            "client_id": row["client_id"],
            "detail": row["detail"] if detail_json is None else orjson.Fragment(detail_json),
            "organization": row["organization"],
            "outcome": row["outcome"],
            "prev_hash": "",
            "program_id": row["program_id"],
            "recorded": instant(recorded) if isinstance(recorded, datetime) else recorded,
            "seq": 0,
            "subtype": row["subtype"],
            "type": row["type"],
        },
        option=orjson.OPT_SORT_KEYS,
    )
    prev = document.rindex(_PREV_HASH)
    seq = document.rindex(_SEQ)
    return document[:prev], document[prev + len(_PREV_HASH) : seq], document[seq + len(_SEQ) :]


def join_parts(parts: tuple[bytes, bytes, bytes], seq: int, prev_hash: str) -> bytes:
    head, middle, tail = parts
    return b'%s"prev_hash":"%s",%s"seq":%d,%s' % (head, prev_hash.encode(), middle, seq, tail)


QUERY_SUBTYPES = frozenset({"search", "peer-list"})
"""Searches: their results are indexed by patient only (the results' references stay in the record)."""


def entities_of(detail: Mapping[str, Any], subtype: str = "") -> list[tuple[str, str]]:
    """The search-index rows of an event: ("patient", Patient id) for its detail's ``patients`` and for
    each ``Patient/x`` among its ``entities``; ("entity", "Type/id") for its other entities, unless the
    event is a search (a search's results are found by their patients: an index row per result would
    make every search cost tens of random index insertions, and BALP names a query's patients and its
    query, not its results)."""
    found: dict[tuple[str, str], None] = {}
    patients = detail.get("patients")
    entities = detail.get("entities")
    for value in patients if type(patients) is list else ():
        if type(value) is str and value:
            found[("patient", patient_id(value)[:200])] = None
    query = subtype in QUERY_SUBTYPES
    for value in entities if type(entities) is list else ():
        if type(value) is str and value:
            if value.startswith("Patient/"):
                found[("patient", value[8:200])] = None
            elif not query:
                found[("entity", value[:200])] = None
    return list(found)


def patient_id(reference: str) -> str:
    """``Patient/x``, ``https://.../Patient/x`` or ``x`` -> ``x``."""
    if "/" not in reference:
        return reference
    head, slash, tail = reference.rstrip("/").rpartition("/")
    if slash and head.rsplit("/", 1)[-1] == "Patient":
        return tail
    return reference


# --- verification ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    seq: int
    """The first record concerned (for removed records: the first missing seq)."""
    kind: str
    """changed, removed, inserted, index (its audit_entities rows differ from its detail), anchor, file, head."""
    message: str

    def __str__(self) -> str:
        return self.message


class ChainChecker:
    """Feed records in ``seq`` order; the first break in the chain becomes :attr:`problem`.

    The rules, at each record r, given the last good record's seq ``E - 1`` and hash ``P``:
    - r.seq < E: r was **inserted** (a seq at or below one already checked, or below the anchor);
    - r.seq > E: records E .. r.seq-1 were **removed** (unless the record after r links to P: then r
      was inserted with a made-up seq);
    - r links to P but its content does not match its hash: r was **changed** (unless the record
      after r links to P: then r was inserted);
    - r does not link to P: when it links to the record before r-1, r-1 was **inserted** (a forged
      record with a correct hash, the rows after it renumbered); when the record after r links to P,
      r was inserted; otherwise r was inserted, or r-1 was changed and its hash recomputed — both are
      named at r.
    One record of look-ahead is kept, so call :meth:`finish` after the last.
    """

    def __init__(self, first_seq: int = 1, prev_hash: str = GENESIS, *, label: str = "") -> None:
        self.expected_seq = first_seq
        self.prev_hash = prev_hash
        self.before_prev: str | None = None
        self.label = label
        self.pending: Mapping[str, Any] | None = None
        self.problem: Problem | None = None
        self.checked = 0
        self.last_seq: int | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None

    def feed(self, row: Mapping[str, Any]) -> bool:
        """False once a problem is found (further rows are ignored)."""
        if self.problem is not None:
            return False
        if self.pending is not None:
            self._check(self.pending, row)
        self.pending = row
        return self.problem is None

    def feed_all(self, rows: Iterable[Mapping[str, Any]]) -> bool:
        return all(self.feed(row) for row in rows)

    def finish(self) -> Problem | None:
        if self.problem is None and self.pending is not None:
            self._check(self.pending, None)
            self.pending = None
        return self.problem

    def _fail(self, seq: int, kind: str, message: str) -> None:
        where = f"{self.label}: " if self.label else ""
        self.problem = Problem(seq, kind, where + message)

    def _check(self, row: Mapping[str, Any], following: Mapping[str, Any] | None) -> None:
        seq = int(row["seq"])
        expected = self.expected_seq
        next_links_back = following is not None and following["prev_hash"] == self.prev_hash
        if seq < expected:
            self._fail(seq, "inserted", f"record {seq} was inserted (seq {seq} comes after {expected - 1})")
            return
        if seq > expected:
            if next_links_back:
                self._fail(seq, "inserted", f"record {seq} was inserted (record {expected} expected here)")
            else:
                last = f"s {expected}..{seq - 1} were" if seq - 1 > expected else f" {expected} was"
                self._fail(expected, "removed", f"record{last} removed (the chain goes from {expected - 1} to {seq})")
            return
        content_ok = record_hash(row) == row["hash"]
        if row["prev_hash"] == self.prev_hash:
            if not content_ok:
                if next_links_back:
                    self._fail(seq, "inserted", f"record {seq} was inserted (the next record links past it)")
                else:
                    self._fail(seq, "changed", f"record {seq} was changed (its content does not match its hash)")
                return
        elif self.before_prev is not None and row["prev_hash"] == self.before_prev:
            self._fail(seq - 1, "inserted", f"record {seq - 1} was inserted (record {seq} links past it)")
            return
        elif next_links_back:
            self._fail(seq, "inserted", f"record {seq} was inserted (the next record links past it)")
            return
        else:
            self._fail(
                seq,
                "inserted",
                f"record {seq} was inserted: it does not link to record {seq - 1} "
                f"(or record {seq - 1} was changed and its hash recomputed)",
            )
            return
        self.before_prev = self.prev_hash
        self.prev_hash = str(row["hash"])
        self.expected_seq = seq + 1
        self.last_seq = seq
        self.checked += 1
