"""``_include`` and ``_revinclude``: the resources a page's matches point at, and those pointing at
them, inside the searcher's data boundary. Their statements are built once (per target types for
``_include``) with bind parameters for every value, as the page's are (:mod:`.execute`)."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache, lru_cache
from typing import Any

import orjson
from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Select,
    String,
    and_,
    any_,
    bindparam,
    exists,
    func,
    literal,
    or_,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection

from service.auth.boundary import visible
from service.fhir.search_params import SEARCH_PARAMS
from service.store.kept import fetch_all
from service.store.tables import fhir_search

from .query import Found, Include, SearchQuery
from .sql import R
from .values import TYPED_REFERENCE

CANONICAL_TYPES = frozenset({"Questionnaire"})
"""Types served here that others reference by canonical URL rather than by Type/id."""
COLUMNS = (R.pk, R.resource_type, R.resource_id, R.body, R.patient_id)
KEPT_TARGET_SHAPES = 256


def found(row: Any) -> Found:
    return Found(row.pk, row.resource_type, row.resource_id, bytes(row.body), row.patient_id)


def _boundary(bounded: bool, resource_type: str | None = None) -> tuple[ColumnElement[bool], ...]:
    """The searcher's boundary (``resource_type``: the one type the statement returns, if one)."""
    condition = visible(bindparam("organization"), bindparam("today"), resource_type) if bounded else None
    return () if condition is None else (condition,)


def _among(column: Any, name: str, item: Any, postgres: bool) -> ColumnElement[bool]:
    """``column`` is one of the list ``name``: on PostgreSQL ``= ANY`` of one array parameter (the
    statement is whole when compiled, so it runs on the driver: service.store.kept), else an IN list
    expanded when run."""
    among: ColumnElement[bool]
    if postgres:
        among = column == any_(bindparam(name, type_=ARRAY(item)))
    else:
        among = column.in_(bindparam(name, expanding=True))
    return among


def _of_matches(postgres: bool, matches: ColumnElement[bool] | None = None) -> tuple[ColumnElement[bool], ...]:
    """On ``fhir_search``: the index rows of one parameter (``param``) of the matches (``pks``, or the
    condition ``matches`` on ``fhir_search.resource_pk``)."""
    s = fhir_search.c
    return (
        _among(s.resource_pk, "pks", BigInteger(), postgres) if matches is None else matches,
        s.program_id == bindparam("program"),
        s.resource_type == bindparam("source_type"),
        s.param == bindparam("param"),
    )


@cache
def _tokens(postgres: bool) -> Select[Any]:
    """The index tokens of one parameter of the matches (what they point at)."""
    return select(fhir_search.c.token).distinct().where(*_of_matches(postgres))


@lru_cache(maxsize=KEPT_TARGET_SHAPES)  # the types come from stored references: bounded
def _targets(types: tuple[str, ...], bounded: bool, postgres: bool) -> Select[Any]:
    """The resources of ``types`` with ids ``ids0``, ``ids1``… (one list per type)."""
    ids = [_among(R.resource_id, f"ids{i}", String(), postgres) for i in range(len(types))]
    targets = or_(*(and_(R.resource_type == t, i) for t, i in zip(types, ids, strict=True)))
    inside = _boundary(bounded, types[0] if len(types) == 1 else None)
    return select(*COLUMNS).where(R.program_id == bindparam("program"), targets, *inside).order_by(R.pk)


def typed_id(token: Any, target: str) -> tuple[ColumnElement[bool], Any]:
    """PostgreSQL: whether an index token is a reference :data:`.values.TYPED_REFERENCE` takes for a
    ``target`` (``target/id``, or with ``/_history/version``), and its id. The parts are cut with
    ``split_part`` (the pattern as a regular expression cost a seventh of PostgreSQL's time on these
    searches, profiled); an id or version of other characters than the pattern's names no stored
    resource."""

    def part(n: int) -> Any:
        return func.split_part(token, "/", n, type_=String())

    typed = literal(target + "/", String()) + part(2)
    versioned = and_(part(3) == "_history", part(4) != "", token == typed + "/_history/" + part(4))
    return and_(token.like(target + "/%"), part(2) != "", or_(token == typed, versioned)), part(2)


@lru_cache(maxsize=KEPT_TARGET_SHAPES)  # the types are the served types: bounded
def _pointed_at(target: str, bounded: bool) -> Select[Any]:
    """PostgreSQL: the resources of type ``target`` the matches' ``param`` points at, in one statement
    (the matches' tokens, their ids looked up by the type's unique key)."""
    return select(*COLUMNS).where(*pointed_at(target, bounded)).order_by(R.pk)


def pointed_at(target: str, bounded: bool, matches: ColumnElement[bool] | None = None) -> list[ColumnElement[bool]]:
    """PostgreSQL, on ``fhir_resources``: of type ``target``, pointed at by the matches' ``param``
    (``matches``: a condition on ``fhir_search.resource_pk`` standing for the ``pks`` parameter)."""
    s = fhir_search.c
    taken, the_id = typed_id(s.token, target)
    ids = select(the_id).where(*_of_matches(True, matches), taken)
    return [
        R.program_id == bindparam("program"),
        R.resource_type == target,
        R.resource_id.in_(ids),
        *_boundary(bounded, target),
    ]


def one_target(include: Include) -> str | None:
    """The one type an ``_include``'s parameter can point at by ``Type/id`` (never by canonical URL),
    if it has one: then :func:`_pointed_at` finds the targets in one statement."""
    param = SEARCH_PARAMS.get(include.source_type, {}).get(include.param)
    if param is None or len(param.targets) != 1 or param.targets[0] in CANONICAL_TYPES:
        return None
    target = param.targets[0]
    return target if include.target_type in (None, target) else None


@lru_cache(maxsize=KEPT_TARGET_SHAPES)  # the source types are the served types: bounded
def _pointing(source_type: str, bounded: bool, postgres: bool) -> Select[Any]:
    """The resources of ``source_type`` whose ``param`` points at one of ``references``."""
    return select(*COLUMNS).where(*pointing(source_type, bounded, postgres)).order_by(R.pk)


def pointing(source_type: str, bounded: bool, postgres: bool, references: Any = None) -> list[ColumnElement[bool]]:
    """On ``fhir_resources``: of ``source_type``, with a ``param`` pointing at one of the ``references``
    (the parameter, or a subquery of them)."""
    t = fhir_search.alias()
    among = _among(t.c.token, "references", String(), postgres) if references is None else t.c.token.in_(references)
    points = exists().where(
        t.c.resource_pk == R.pk,
        t.c.program_id == bindparam("program"),
        t.c.resource_type == bindparam("source_type"),
        t.c.param == bindparam("param"),
        among,
    )
    return [
        R.program_id == bindparam("program"),
        R.resource_type == bindparam("source_type"),
        points,
        *_boundary(bounded, source_type),
    ]


def _canonicals(matches: list[Found]) -> list[str]:
    """``url|version`` of the matches that are canonical resources (a Questionnaire), which is how
    what points at them refers to them (``QuestionnaireResponse.questionnaire``)."""
    canonicals = []
    for match in matches:
        if match.resource_type in CANONICAL_TYPES:
            resource = orjson.loads(match.body)
            if resource.get("url") and resource.get("version"):
                canonicals.append(f"{resource['url']}|{resource['version']}")
    return canonicals


def _indexed(program_id: str, param: str, token: str) -> ColumnElement[bool]:
    s = fhir_search.alias()
    return exists().where(s.c.resource_pk == R.pk, s.c.program_id == program_id, s.c.param == param, s.c.token == token)


async def _canonical_targets(
    conn: AsyncConnection, program_id: str, canonicals: set[str], target_type: str | None, organization: str | None
) -> list[Found]:
    """The resources canonical references (``url|version``, or ``url`` for every version) name, found
    by their ``url`` and ``version`` index rows (a QuestionnaireResponse's Questionnaire)."""
    versioned = {c.split("|", 1)[0] for c in canonicals if "|" in c}
    conditions = []
    for canonical in sorted(canonicals):
        url, _, version = canonical.partition("|")
        if not version and url in versioned:
            continue  # the url-only index row of a versioned canonical
        condition = _indexed(program_id, "url", url)
        conditions.append(and_(condition, _indexed(program_id, "version", version)) if version else condition)
    if not conditions:
        return []
    typed = [R.resource_type == target_type] if target_type else []
    inside = visible(organization, resource_type=target_type)
    boundary = [inside] if inside is not None else []
    rows = await conn.execute(
        select(*COLUMNS).where(R.program_id == program_id, or_(*conditions), *typed, *boundary).order_by(R.pk)
    )
    return [found(row) for row in rows]


async def included(
    conn: AsyncConnection,
    program_id: str,
    query: SearchQuery,
    matches: list[Found],
    organization: str | None,
    planned_once: Any = None,
) -> list[Found]:
    """The included resources, each once and none of the matches, in the order the includes name them.
    ``planned_once``: see :func:`service.store.kept.fetch_all` (each statement here is driven by the
    keys it is given: the page's pks, the target ids, the references; one plan serves every value)."""
    if not matches or not (query.includes or query.revincludes):
        return []
    common: dict[str, Any] = {"program": program_id}
    if organization is not None:
        common.update(organization=organization, today=datetime.now(UTC).date())
    bounded = organization is not None
    postgres = getattr(getattr(conn, "dialect", None), "name", None) == "postgresql"
    results: list[Found] = []
    pks = [m.pk for m in matches]
    for include in query.includes:
        asked = {**common, "pks": pks, "source_type": include.source_type, "param": include.param}
        target = one_target(include) if postgres else None
        if target is not None:
            rows = await fetch_all(conn, _pointed_at(target, bounded), asked, True, planned_once)
            results += [found(row) for row in rows]
            continue
        tokens = [row.token for row in await fetch_all(conn, _tokens(postgres), asked, True, planned_once)]
        wanted: dict[str, set[str]] = {}
        canonicals: set[str] = set()
        for token in tokens:
            typed = TYPED_REFERENCE.match(token or "")
            if typed and (include.target_type is None or typed.group(1) == include.target_type):
                wanted.setdefault(typed.group(1), set()).add(typed.group(2))
            elif token and "://" in token:
                canonicals.add(token)
        results += await _canonical_targets(conn, program_id, canonicals, include.target_type, organization)
        if not wanted:
            continue
        types = tuple(sorted(wanted))
        ids = {f"ids{i}": sorted(wanted[t]) for i, t in enumerate(types)}
        targets = _targets(types, bounded, postgres)
        results += [found(row) for row in await fetch_all(conn, targets, {**common, **ids}, True, planned_once)]
    references = [f"{m.resource_type}/{m.resource_id}" for m in matches] + _canonicals(matches)
    for include in query.revincludes:
        if include.target_type not in (None, query.resource_type):
            continue
        parameters = {**common, "source_type": include.source_type, "param": include.param, "references": references}
        pointing = _pointing(include.source_type, bounded, postgres)
        results += [found(row) for row in await fetch_all(conn, pointing, parameters, True, planned_once)]
    return unique(matches, results)


def unique(matches: list[Found], results: list[Found]) -> list[Found]:
    """The included resources each once, none of them a match, in their order."""
    seen = {(m.resource_type, m.resource_id) for m in matches}
    kept: list[Found] = []
    for item in results:
        if (item.resource_type, item.resource_id) not in seen:
            seen.add((item.resource_type, item.resource_id))
            kept.append(item)
    return kept
