"""Search of the audit log (GET /fhir/AuditEvent): parameters to SQL, newest first, keyset paging.

Parameters (comma = OR, a repeated parameter = AND):
- ``date``: ``recorded``, with the prefixes eq (default), ne, gt, lt, ge, le; a date, a month, a
  year or a dateTime (UTC when it names no zone) stands for the range it covers;
- ``patient``: a Patient id or reference the event concerned;
- ``agent``: the client id (``system|value`` accepted, the value is compared);
- ``entity``: a resource ``Type/id`` the event touched (``entity=Patient/x`` is ``patient=x``); the
  results of a search are not indexed one by one: find the searches that returned a resource by its
  patient;
- ``action``: C, R, U, D, E; ``outcome``: 0, 4, 8, 12;
- ``type``: PeerLink's event type (rest, security, admin, exchange) or the AuditEvent.type code
  (rest, 110112 Query, 110114 User Authentication, 110113 Security Alert, 110101 Audit Log Used,
  110106 Export, 110107 Import), with or without ``system|``;
- ``subtype``: PeerLink's subtype (read, search, peer-read, token, client-add ...) or the
  restful-interaction code (search-type, history-instance ...);
- ``_count`` (1-500, default 50) and ``_cursor`` (from a next link).
An event with no program (a refused token of an unknown client) belongs to the gateway and is shown
to every program's administrators; every other event only to its program's.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, false, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from service.domain.errors import BadRequest
from service.store.repository import decode_cursor, encode_cursor
from service.store.tables import audit_entities, audit_log

from .chain import QUERY_SUBTYPES, patient_id
from .fhir import ADMIN_SUBTYPES, AUDIT_USE, EXCHANGE_TYPES, REST_SUBTYPES, SECURITY_SUBTYPES

DEFAULT_COUNT = 50
MAX_COUNT = 500
PARAMETERS = ("date", "patient", "agent", "entity", "action", "outcome", "type", "subtype")
CONTROLS = ("_count", "_cursor", "_format", "_pretty")
EVENT_TYPES = ("rest", "security", "admin", "exchange")
ACTIONS = frozenset("CRUDE")
OUTCOMES = frozenset({"0", "4", "8", "12"})
_PREFIX = re.compile(r"^(eq|ne|gt|lt|ge|le)?(\d{4}(?:-\d{2}(?:-\d{2}(?:T.*)?)?)?)$")


@dataclass(frozen=True)
class AuditQuery:
    conditions: tuple[ColumnElement[bool], ...]
    count: int
    before_seq: int | None


@dataclass(frozen=True)
class AuditPage:
    rows: list[dict[str, Any]]
    next_cursor: str | None


def _values(raw: str) -> list[str]:
    values = [v.strip() for v in raw.split(",") if v.strip()]
    if not values:
        raise BadRequest("a search parameter needs a value")
    return values


def _code(value: str) -> str:
    return value.rpartition("|")[2]


def date_range(value: str) -> tuple[datetime, datetime]:
    """[start, end) of a FHIR date or dateTime at its precision."""
    try:
        if "T" in value:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
            moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
            step = timedelta(microseconds=1) if moment.microsecond else timedelta(seconds=1)
            return moment.astimezone(UTC), moment.astimezone(UTC) + step
        parts = [int(p) for p in value.split("-")]
        if len(parts) == 1:
            return datetime(parts[0], 1, 1, tzinfo=UTC), datetime(parts[0] + 1, 1, 1, tzinfo=UTC)
        if len(parts) == 2:
            year, month = parts
            days = calendar.monthrange(year, month)[1]
            start = datetime(year, month, 1, tzinfo=UTC)
            return start, start + timedelta(days=days)
        start = datetime(parts[0], parts[1], parts[2], tzinfo=UTC)
        return start, start + timedelta(days=1)
    except ValueError:
        raise BadRequest(f"not a date or dateTime: {value[:40]}") from None


def _date(raw: str) -> ColumnElement[bool]:
    recorded = audit_log.c.recorded
    alternatives = []
    for value in _values(raw):
        match = _PREFIX.match(value)
        if match is None:
            raise BadRequest("date takes [eq|ne|gt|lt|ge|le]YYYY[-MM[-DD[Thh:mm:ss[.fff][Z|+hh:mm]]]]")
        prefix, moment = match.group(1) or "eq", match.group(2)
        start, end = date_range(moment)
        alternatives.append(
            {
                "eq": and_(recorded >= start, recorded < end),
                "ne": or_(recorded < start, recorded >= end),
                "gt": recorded >= end,
                "ge": recorded >= start,
                "lt": recorded < start,
                "le": recorded < end,
            }[prefix]
        )
    return or_(*alternatives)


def _indexed(kind: str, refs: Sequence[str]) -> ColumnElement[bool]:
    found = select(audit_entities.c.seq).where(audit_entities.c.kind == kind, audit_entities.c.ref.in_(refs))
    return audit_log.c.seq.in_(found)


def _type(raw: str) -> ColumnElement[bool]:
    t, s = audit_log.c.type, audit_log.c.subtype
    alternatives: list[ColumnElement[bool]] = []
    for value in _values(raw):
        code = _code(value)
        if code in EVENT_TYPES:
            alternatives.append(t == code)
        elif code == "110112":
            alternatives.append(and_(t == "rest", s.in_(sorted(QUERY_SUBTYPES))))
        elif code in ("110114", "110113"):
            security = [sub for sub, (kind, _) in SECURITY_SUBTYPES.items() if kind == code]
            condition = and_(t == "security", s.in_(security))
            if code == "110113":
                condition = or_(condition, and_(t == "admin", s.not_in(sorted(AUDIT_USE))))
            alternatives.append(condition)
        elif code == "110101":
            alternatives.append(and_(t == "admin", s.in_(sorted(AUDIT_USE))))
        elif code in EXCHANGE_TYPES.values():
            alternatives.append(and_(t == "exchange", s.in_([k for k, v in EXCHANGE_TYPES.items() if v == code])))
        else:
            alternatives.append(false())
    return or_(*alternatives)


def _subtype(raw: str) -> ColumnElement[bool]:
    s = audit_log.c.subtype
    alternatives: list[ColumnElement[bool]] = []
    for value in _values(raw):
        code = _code(value)
        ours = [sub for sub, restful in REST_SUBTYPES.items() if restful == code]
        if code.startswith("history-"):
            ours.append("history")
        known = {*REST_SUBTYPES, *SECURITY_SUBTYPES, *ADMIN_SUBTYPES, *AUDIT_USE, *EXCHANGE_TYPES}
        if code in known or not ours:
            ours.append(code)
        alternatives.append(s.in_(sorted(set(ours))))
    return or_(*alternatives)


def parse(items: Sequence[tuple[str, str]], *, lenient: bool = False) -> AuditQuery:
    conditions: list[ColumnElement[bool]] = []
    count, before = DEFAULT_COUNT, None
    for name, raw in items:
        if name == "_count":
            if not raw.isdigit() or not 1 <= int(raw) <= MAX_COUNT:
                raise BadRequest(f"_count must be 1..{MAX_COUNT}")
            count = int(raw)
        elif name == "_cursor":
            before = decode_cursor(raw)
        elif name in ("_format", "_pretty"):
            continue
        elif name == "date":
            conditions.append(_date(raw))
        elif name == "patient":
            conditions.append(_indexed("patient", [patient_id(v) for v in _values(raw)]))
        elif name == "entity":
            values = _values(raw)
            patients = [v[len("Patient/") :] for v in values if v.startswith("Patient/")]
            others = [v for v in values if not v.startswith("Patient/")]
            either = [_indexed(kind, refs) for kind, refs in (("patient", patients), ("entity", others)) if refs]
            conditions.append(or_(*either))
        elif name == "agent":
            conditions.append(audit_log.c.client_id.in_([_code(v) for v in _values(raw)]))
        elif name == "action":
            values = _values(raw)
            if not set(values) <= ACTIONS:
                raise BadRequest("action is one of C, R, U, D, E")
            conditions.append(audit_log.c.action.in_(values))
        elif name == "outcome":
            values = [_code(v) for v in _values(raw)]
            if not set(values) <= OUTCOMES:
                raise BadRequest("outcome is one of 0, 4, 8, 12")
            conditions.append(audit_log.c.outcome.in_(values))
        elif name == "type":
            conditions.append(_type(raw))
        elif name == "subtype":
            conditions.append(_subtype(raw))
        elif not lenient:
            raise BadRequest(
                f"unknown search parameter {name[:40]!r} for AuditEvent (known: {', '.join(PARAMETERS)}); "
                "send Prefer: handling=lenient to ignore it"
            )
    return AuditQuery(tuple(conditions), count, before)


def tenant(program_id: str | None) -> ColumnElement[bool]:
    """The events a program's administrators see: theirs, and the gateway's own (no program)."""
    if program_id is None:
        return audit_log.c.seq.is_not(None)
    return or_(audit_log.c.program_id == program_id, audit_log.c.program_id.is_(None))


async def run(conn: AsyncConnection, program_id: str | None, query: AuditQuery) -> AuditPage:
    statement = select(audit_log).where(tenant(program_id), *query.conditions)
    if query.before_seq is not None:
        statement = statement.where(audit_log.c.seq < query.before_seq)
    statement = statement.order_by(audit_log.c.seq.desc()).limit(query.count + 1)
    rows = [dict(r) for r in (await conn.execute(statement)).mappings()]
    more = len(rows) > query.count
    rows = rows[: query.count]
    return AuditPage(rows, encode_cursor(int(rows[-1]["seq"])) if more and rows else None)
