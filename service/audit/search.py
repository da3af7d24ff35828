"""Search of the audit log (GET /fhir/AuditEvent) on the FHIR search engine.

The parameters are parsed by the same parser as every other type (comma = OR, a repeated parameter
= AND; ``:missing`` and ``:not`` on tokens; unknown parameters are a 400 unless the request says
``Prefer: handling=lenient``), and run by the same keyset pager, over the audit log's own columns
and entity index instead of the projection:
- ``date`` (and ``_lastUpdated``): ``recorded``, with the prefixes eq (default), ne, gt, lt, ge, le;
  a date, a month, a year or a dateTime (UTC when it names no zone) stands for the range it covers;
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
- ``_id``: the event's id (its sequence number in the log);
- ``_count`` (1-500, default 50), ``_sort`` (``date``, ``-date``; newest first without it),
  ``_summary=count`` (the total only), ``_total=none``, ``_elements`` and ``_cursor`` (from a next
  link; paging holds to the log as it was when the first page was read).
An event with no program (a refused token of an unknown client) belongs to the gateway and is shown
to every program's administrators; every other event only to its program's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, and_, false, func, not_, or_, select, true
from sqlalchemy.ext.asyncio import AsyncConnection

from service.fhir.search import Cursor, SearchQuery, Sort, parse
from service.fhir.search.paging import Page, page
from service.fhir.search.query import After, Criterion, DateValue, ReferenceValue, TokenValue, Value
from service.fhir.search.sql import date_condition, ends_with
from service.fhir.search.values import bad
from service.fhir.search_params import ParamType, SearchParam
from service.store.tables import audit_entities, audit_log

from .chain import QUERY_SUBTYPES, patient_id
from .fhir import ADMIN_SUBTYPES, AUDIT_USE, EXCHANGE_TYPES, REST_SUBTYPES, SECURITY_SUBTYPES

RESOURCE_TYPE = "AuditEvent"
_T, _R, _D = ParamType.TOKEN, ParamType.REFERENCE, ParamType.DATE
AUDIT_PARAMS: dict[str, SearchParam] = {
    p.name: p
    for p in (
        SearchParam("date", _D, (), "When recorded"),
        SearchParam("patient", _R, (), "The Patient whose data the event concerned", ("Patient",)),
        SearchParam("agent", _T, (), "The client id of the requester"),
        SearchParam("entity", _R, (), "A resource the event read or changed, as Type/id"),
        SearchParam("action", _T, (), "C, R, U, D or E"),
        SearchParam("outcome", _T, (), "0, 4, 8 or 12"),
        SearchParam("type", _T, (), "PeerLink's event type or the AuditEvent.type code"),
        SearchParam("subtype", _T, (), "PeerLink's subtype or the restful-interaction code"),
    )
}
"""The AuditEvent search parameters (not indexed from resources: the log's columns answer them)."""
NEWEST_FIRST = Sort("", None, descending=True)
EVENT_TYPES = ("rest", "security", "admin", "exchange")
CODES = {"action": frozenset("CRUDE"), "outcome": frozenset({"0", "4", "8", "12"})}
_KNOWN_SUBTYPES = frozenset({*REST_SUBTYPES, *SECURITY_SUBTYPES, *ADMIN_SUBTYPES, *AUDIT_USE, *EXCHANGE_TYPES})
L = audit_log.c


def parse_audit(items: Sequence[tuple[str, str]], *, lenient: bool = False, base: str = "") -> SearchQuery:
    """The request's parameters as a typed query (the engine's parser, with the audit log's table).
    Stricter than other types where the log always was: a parameter of the log with no value, an
    ``_count`` of 0, an action or outcome that is not one of the codes, and includes are 400s."""
    for key, raw in items:
        name = key.partition(":")[0]
        if raw == "" and name in AUDIT_PARAMS:
            raise bad(f"{name} needs a value", key[:80])
        if name == "_count" and raw.isdigit() and int(raw) == 0:
            raise bad("_count must be 1..500 (_summary=count asks for the total only)", "_count")
    query = parse(RESOURCE_TYPE, items, lenient=lenient, base=base, params=AUDIT_PARAMS, default_sort=NEWEST_FIRST)
    if query.includes or query.revincludes:
        raise bad("AuditEvent search does not support _include or _revinclude", "_include")
    for criterion in query.criteria:
        allowed = CODES.get(criterion.param)
        if allowed is None:
            continue
        for value in criterion.values:
            if not isinstance(value, TokenValue) or value.code not in allowed:
                raise bad(f"{criterion.param} is one of {', '.join(sorted(allowed))}", criterion.param)
    return query


def tenant(program_id: str | None) -> ColumnElement[bool]:
    """The events a program's administrators see: theirs, and the gateway's own (no program)."""
    if program_id is None:
        return L.seq.is_not(None)
    return or_(L.program_id == program_id, L.program_id.is_(None))


def _indexed(kind: str, condition: ColumnElement[bool]) -> ColumnElement[bool]:
    e = audit_entities.c
    return L.seq.in_(select(e.seq).where(e.kind == kind, condition))


def _type(code: str) -> ColumnElement[bool]:
    t, s = L.type, L.subtype
    if code in EVENT_TYPES:
        return t == code
    if code == "110112":
        return and_(t == "rest", s.in_(sorted(QUERY_SUBTYPES)))
    if code in ("110114", "110113"):
        security = [sub for sub, (kind, _) in SECURITY_SUBTYPES.items() if kind == code]
        condition = and_(t == "security", s.in_(security))
        if code == "110113":
            condition = or_(condition, and_(t == "admin", s.not_in(sorted(AUDIT_USE))))
        return condition
    if code == "110101":
        return and_(t == "admin", s.in_(sorted(AUDIT_USE)))
    if code in EXCHANGE_TYPES.values():
        return and_(t == "exchange", s.in_([k for k, v in EXCHANGE_TYPES.items() if v == code]))
    return false()


def _subtype(code: str) -> ColumnElement[bool]:
    ours = [sub for sub, restful in REST_SUBTYPES.items() if restful == code]
    if code.startswith("history-"):
        ours.append("history")
    if code in _KNOWN_SUBTYPES or not ours:
        ours.append(code)
    return L.subtype.in_(sorted(set(ours)))


def _reference(param: str, value: ReferenceValue) -> ColumnElement[bool]:
    e = audit_entities.c
    if value.any_type_id is not None:  # entity=x: a Patient x, or any resource whose id is x
        return or_(
            _indexed("patient", e.ref == value.any_type_id),
            _indexed("entity", ends_with(e.ref, "/" + value.any_type_id)),
        )
    patients = [patient_id(r) for r in value.references if param == "patient" or r.startswith("Patient/")]
    others = [r for r in value.references if param == "entity" and not r.startswith("Patient/")]
    either = [_indexed(kind, e.ref.in_(refs)) for kind, refs in (("patient", patients), ("entity", others)) if refs]
    return or_(*either) if either else false()


_COLUMNS: dict[str, ColumnElement[Any]] = {"agent": L.client_id, "action": L.action, "outcome": L.outcome}


def _value(param: str, value: Value) -> ColumnElement[bool]:
    if isinstance(value, str):  # _id
        return L.seq == int(value) if value.isdigit() and len(value) < 19 else false()
    if isinstance(value, DateValue):
        return date_condition(L.recorded, value)
    if isinstance(value, ReferenceValue):
        return _reference(param, value)
    if not isinstance(value, TokenValue):
        return false()
    if value.code is None:  # system|: any code
        return true()
    if param == "type":
        return _type(value.code)
    if param == "subtype":
        return _subtype(value.code)
    return _COLUMNS[param] == value.code


def _present(param: str) -> ColumnElement[bool]:
    if param == "patient":
        return _indexed("patient", true())
    if param == "entity":
        return or_(_indexed("patient", true()), _indexed("entity", true()))
    if param == "agent":
        return L.client_id.is_not(None)
    return true()  # every event has a date, an action, an outcome, a type and a subtype


def condition(criterion: Criterion) -> ColumnElement[bool]:
    """One criterion as a condition on ``audit_log`` rows."""
    if criterion.missing is not None:
        present = _present(criterion.param)
        return not_(present) if criterion.missing else present
    matched = or_(*(_value(criterion.param, v) for v in criterion.values))
    return not_(matched) if criterion.negate else matched


class AuditLog:
    """The search engine's source over the audit log: the events one program's administrators see.
    A later page holds to the log as of the first (events written since, like the audit of the
    search itself, join a new search)."""

    table = audit_log
    pk = L.seq
    columns = (*audit_log.c, L.seq.label("pk"))

    def __init__(self, program_id: str | None) -> None:
        self.program_id = program_id

    def filters(self, query: SearchQuery) -> list[ColumnElement[bool]]:
        as_of = [L.seq <= query.cursor.snapshot] if query.cursor is not None else []
        return [tenant(self.program_id), *as_of, *(condition(c) for c in query.criteria)]

    def sort_key(self, sort: Sort, cursor: Cursor | After | None) -> Any:
        return None if sort.key is None else L.recorded  # date and _lastUpdated: when recorded

    def snapshot(self) -> Any:
        return select(func.coalesce(func.max(L.seq), 0)).scalar_subquery()


async def run(conn: AsyncConnection, program_id: str | None, query: SearchQuery) -> Page:
    """The page of events (rows of ``audit_log``), its total and the next cursor."""
    return await page(conn, AuditLog(program_id), query)
