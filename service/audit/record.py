"""An audit record, and what the writer makes of it before it is chained: text columns cut to their
limits, ``detail`` as plain JSON that both databases give back unchanged (the hash covers it), the
canonical parts around ``prev_hash`` and ``seq`` (service.audit.chain), and the SHA-256 chaining of
prepared records after a tail.

``detail`` keys the rest of PeerLink uses: ``patients`` (Patient ids whose data was returned or
changed), ``entities`` ("Type/id" touched), ``query`` (a search's query string; it may hold PHI, and
the audit store is the protected place for it, never the logs), ``purpose`` (purpose of use),
``status`` (HTTP status), ``reason`` (why refused), ``endpoint`` (EHR connection name), and
optionally ``interaction`` (a FHIR restful-interaction code, e.g. history-type, when the subtype
alone does not say). Values are kept as JSON that both databases give back unchanged (the hash
covers them): floats are stored as text, NUL characters and lone surrogates replaced, other values
(datetimes, UUIDs ...) as their text.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import orjson

from service.domain.errors import PeerLinkError

from .chain import canonical_parts, entities_of, join_parts

Action = Literal["C", "R", "U", "D", "E"]
Outcome = Literal["0", "4", "8", "12"]
"""FHIR AuditEvent.outcome: 0 success, 4 minor failure (refused), 8 serious failure, 12 major failure."""


class AuditUnavailable(PeerLinkError):
    """The audit record could not be written: the request it describes must not succeed."""

    status = 503
    fhir_code = "transient"
    title = "Service unavailable"


@dataclass(frozen=True)
class AuditRecord:
    type: str
    """rest, security (tokens and refusals), admin, exchange."""
    subtype: str
    """read, vread, search, history, create, update, patch, transaction, peer-read, peer-list,
    peer-create, peer-update, peer-action; token, access-refused; deliver, poll; client-add, ..."""
    action: Action
    outcome: Outcome
    client_id: str | None = None
    organization: str | None = None
    address: str | None = None
    program_id: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    recorded: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass(frozen=True)
class Prepared:
    """A record ready to be chained (see :func:`prepare`)."""

    values: dict[str, Any]
    """The columns but seq, prev_hash and hash (detail as plain JSON values)."""
    detail_json: bytes
    """detail as canonical JSON (keys sorted)."""
    entities: list[tuple[str, str]]
    parts: tuple[bytes, bytes, bytes]
    """The canonical form around prev_hash and seq (service.audit.chain.canonical_parts)."""


_LIMITS = {"type": 40, "subtype": 40, "action": 1, "outcome": 2, "program_id": 64, "client_id": 100}
_LIMITS |= {"organization": 300, "address": 100}


def _clean_text(value: str) -> str:
    if "\x00" in value:
        value = value.replace("\x00", "\ufffd")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            value = value.encode("utf-8", "replace").decode("utf-8")
    return value


def _clean(value: Any) -> Any:
    """Plain JSON that both databases give back unchanged: no NUL characters (PostgreSQL refuses
    them), no lone surrogates, floats as text, other values as JSON or their text."""
    kind = type(value)
    if kind is str:
        return _clean_text(value)
    if value is None or kind is int or kind is bool:
        return value
    if kind is list or kind is tuple:
        return [_clean(v) for v in value]
    if kind is dict:
        return {(k if type(k) is str else str(k)): _clean(v) for k, v in value.items()}
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str | int):
        return _clean(str(value) if isinstance(value, str) else int(value))
    if isinstance(value, list | tuple | set | frozenset):
        return [_clean(v) for v in value]
    if isinstance(value, dict):
        return _clean(dict(value))
    return _clean(orjson.loads(orjson.dumps(value, default=str)))


def _is_clean(value: Any) -> bool:
    """Already what :func:`_clean` would make of it (the usual case: no copy needed)."""
    kind = type(value)
    if kind is str:
        return "\x00" not in value and (value.isascii() or _clean_text(value) == value)
    if value is None or kind is int or kind is bool:
        return True
    if kind is list:
        return all(_is_clean(item) for item in value)
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str or not _is_clean(key) or not _is_clean(item):
                return False
        return True
    return False


def _text(name: str, value: str | None) -> str | None:
    if value is None:
        return None
    if type(value) is str and value.isascii() and "\x00" not in value:  # the usual case: nothing to clean
        return value[: _LIMITS[name]]
    return _clean_text(str(value))[: _LIMITS[name]]


def prepare(record: AuditRecord) -> Prepared:
    """The record's columns cleaned and cut, its detail as canonical JSON, its index rows and canonical parts."""
    recorded = record.recorded if record.recorded.tzinfo else record.recorded.replace(tzinfo=UTC)
    detail = record.detail if _is_clean(record.detail) and type(record.detail) is dict else _clean(record.detail)
    if type(detail) is not dict:
        detail = {"value": detail}
    values = {
        "recorded": recorded.astimezone(UTC),
        "program_id": _text("program_id", record.program_id),
        "type": _text("type", record.type) or "",
        "subtype": _text("subtype", record.subtype) or "",
        "action": _text("action", record.action) or "E",
        "outcome": _text("outcome", record.outcome) or "0",
        "client_id": _text("client_id", record.client_id),
        "organization": _text("organization", record.organization),
        "address": _text("address", record.address),
        "detail": detail,
    }
    detail_json = orjson.dumps(detail, option=orjson.OPT_SORT_KEYS)
    parts = canonical_parts(values, detail_json)
    return Prepared(values, detail_json, entities_of(detail, str(values["subtype"])), parts)


def chain_hashes(prepared: Sequence[Prepared], seq: int, prev: str) -> list[tuple[Prepared, int, str, str]]:
    """(record, seq, prev_hash, hash) for records appended after (seq, prev): the hash is SHA-256 of
    the canonical form (service.audit.chain.canonical), joined from the parts prepare() made."""
    chained = []
    for item in prepared:
        seq += 1
        digest = hashlib.sha256(join_parts(item.parts, seq, prev)).hexdigest()
        chained.append((item, seq, prev, digest))
        prev = digest
    return chained


def unavailable(error: BaseException) -> AuditUnavailable:
    """The AuditUnavailable (503) a failed write raises, caused by the error."""
    failure = AuditUnavailable("the audit log cannot be written; the request was not carried out")
    failure.__cause__ = error
    return failure
