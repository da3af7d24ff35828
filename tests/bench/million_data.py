"""A program of many participants on PostgreSQL, in the tables the gateway reads, fast.

The demo seed (``service.cli.seed``: 12 participants, each with coverage, care team, goal, consent, sessions
with signed notes, outcome assessments, 7 referrals) plus a few more finished sessions with signed notes
per participant, written through the same operations the API uses, are the templates: every row they left
in the record tables, ``record_versions``, the FHIR projection (``fhir_resources``, ``fhir_versions``,
``fhir_search``) and ``access_grants`` (the consent decision every FHIR read carries) is read back. Each
of the N participants made is one template's rows copied with new ids (record ids, FHIR ids, the hospital
MRN and the Medicaid member id) and every date of the last years moved by a number of days of its own, in
the JSON bytes, the index rows and the date columns alike; ``content_hash`` is the SHA-256 of the moved
mapped resource, as the projection writes it. So what is served is what the mappings made, valid FHIR.

The copies go in with COPY (asyncpg ``copy_records_to_table``), with the tables' plain indexes dropped
for the load and made again after it, foreign-key triggers off for the loading session
(``session_replication_role = replica``), then ANALYZE.
"""

from __future__ import annotations

import asyncio
import hashlib
import multiprocessing
import random
import re
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
import orjson

from mappings.ids import fhir_id

RECORD_TABLES = (
    "participants",
    "care_team_members",
    "encounters",
    "notes",
    "referrals",
    "consents",
    "goals",
    "assessments",
    "coverages",
)
LOADED_TABLES = (*RECORD_TABLES, "record_versions", "fhir_resources", "fhir_versions", "fhir_search", "access_grants")
SHIFT_DAYS = 250
"""Each participant's dates move back by 0..SHIFT_DAYS days (the seeded consents stay in force today)."""
BATCH = 500
"""Participants per COPY batch."""
_DATE = re.compile(r"(?<![\w.-])\d{4}-\d{2}-\d{2}(?![\d.-])")


def dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


@dataclass
class Template:
    """One seeded participant's rows, per table, and what each copy must change."""

    patient_id: str
    rows: dict[str, list[asyncpg.Record]] = field(default_factory=dict)
    ids: list[str] = field(default_factory=list)
    """Strings that name this participant's records: replaced by new ones in each copy."""
    hashed: dict[int, bytes] = field(default_factory=dict)
    """fhir_resources pk -> the mapped resource's JSON as the projection hashed it."""
    resources: int = 0
    system: str = ""
    """The program's identifier system (FHIR ids are uuid5 of it, a kind and a domain id)."""
    derived: dict[str, tuple[str, str]] = field(default_factory=dict)
    """FHIR id -> (kind, domain id) it was derived from (``mappings.ids.fhir_id``)."""


@dataclass
class LoadReport:
    participants: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    """The copies: generating, COPY, indexes made again, ANALYZE."""
    template_seconds: float = 0.0
    """Migrating, seeding and reading the templates (not part of the load)."""
    patients: list[tuple[str, str]] = field(default_factory=list)
    """(Patient id, MRN) of every participant made, in order."""

    @property
    def resources(self) -> int:
        return self.rows.get("fhir_resources", 0)


# --- templates ------------------------------------------------------------------------------------------------
async def read_templates(conn: asyncpg.Connection, participant_ids: list[str]) -> list[Template]:
    """The rows of these participants."""
    templates = []
    for participant in await conn.fetch(
        "SELECT * FROM participants WHERE id = ANY($1::text[]) ORDER BY pk", participant_ids
    ):
        templates.append(await _template(conn, participant))
    return templates


async def _template(conn: asyncpg.Connection, participant: asyncpg.Record) -> Template:
    pid = participant["id"]
    data = orjson.loads(participant["data"])
    rows: dict[str, list[asyncpg.Record]] = {"participants": [participant]}
    for table in RECORD_TABLES[1:]:
        if table == "notes":
            continue
        rows[table] = await conn.fetch(f"SELECT * FROM {table} WHERE participant_id = $1 ORDER BY pk", pid)
    encounter_ids = [r["id"] for r in rows["encounters"]]
    rows["notes"] = await conn.fetch(
        "SELECT * FROM notes WHERE encounter_id = ANY($1::text[]) ORDER BY pk", encounter_ids
    )
    record_ids = [r["id"] for table in RECORD_TABLES for r in rows[table]]
    rows["record_versions"] = await conn.fetch(
        "SELECT * FROM record_versions WHERE record_id = ANY($1::text[]) ORDER BY pk", record_ids
    )
    grants = await conn.fetch("SELECT * FROM access_grants WHERE origin_id = ANY($1::text[]) ORDER BY pk", record_ids)
    patient_id = grants[0]["patient_id"] if grants else None
    rows["fhir_resources"] = await conn.fetch(
        "SELECT * FROM fhir_resources WHERE patient_id = $1 OR source_id = ANY($2::text[]) ORDER BY pk",
        patient_id,
        record_ids,
    )
    if patient_id is None:
        patient_id = next(r["resource_id"] for r in rows["fhir_resources"] if r["resource_type"] == "Patient")
    rows["access_grants"] = await conn.fetch(
        "SELECT * FROM access_grants WHERE patient_id = $1 ORDER BY pk", patient_id
    )
    pks = [r["pk"] for r in rows["fhir_resources"]]
    rows["fhir_versions"] = await conn.fetch(
        "SELECT v.* FROM fhir_versions v JOIN fhir_resources r ON r.program_id = v.program_id "
        "AND r.resource_type = v.resource_type AND r.resource_id = v.resource_id WHERE r.pk = ANY($1::bigint[]) "
        "ORDER BY v.pk",
        pks,
    )
    rows["fhir_search"] = await conn.fetch(
        "SELECT * FROM fhir_search WHERE resource_pk = ANY($1::bigint[]) ORDER BY pk", pks
    )
    ids = set(record_ids) | {r["resource_id"] for r in rows["fhir_resources"]} | {patient_id}
    # the hospital's MRN and the payer's member id are the participant's own too
    ids |= {i["value"] for i in data.get("identifiers") or []}
    ids |= {orjson.loads(r["data"])["member_id"] for r in rows["coverages"]}
    template = Template(patient_id, rows, sorted(ids, key=len, reverse=True), resources=len(pks))
    return template


def hashed_bodies(template: Template, mapped: dict[tuple[str, str], dict[str, Any]]) -> None:
    """The projection's hash input of each template resource: the mapped resource as orjson wrote it."""
    for r in template.rows["fhir_resources"]:
        resource = mapped.get((r["resource_type"], r["resource_id"]))
        if resource is not None:
            template.hashed[r["pk"]] = orjson.dumps(resource)


# --- copies ----------------------------------------------------------------------------------------------------
_CONST, _PK, _RESOURCE_PK, _HASH, _TEXT, _BYTES, _MOMENT, _DAY = range(8)


class Copier:
    """One template's rows, each value compiled once into what a copy changes: literal pieces, id slots and
    date slots (a string or bytes), a moved date or datetime, a new pk, or nothing."""

    def __init__(self, template: Template, today: date) -> None:
        self.template = template
        self.low, self.high = today - timedelta(days=1200), today + timedelta(days=800)
        ids = "|".join(re.escape(i) for i in template.ids)
        self.pattern = re.compile(f"(?P<id>{ids})|{_DATE.pattern}")
        self._dates: dict[tuple[str, int], str] = {}
        self.plans: dict[str, list[list[tuple[int, Any]]]] = {}
        for table, rows in template.rows.items():
            self.plans[table] = [
                [self._plan(table, row, column, value) for column, value in row.items()] for row in rows
            ]

    def _pieces(self, text: str) -> list[tuple[int, str]] | None:
        pieces: list[tuple[int, str]] = []
        at = 0
        for match in self.pattern.finditer(text):
            if match.group("id") is None and not self._in_window(match.group(0)):
                continue
            pieces.append((0, text[at : match.start()]))
            pieces.append((1 if match.group("id") is not None else 2, match.group(0)))
            at = match.end()
        if not pieces:
            return None
        pieces.append((0, text[at:]))
        return [p for p in pieces if p[1]]

    def _in_window(self, text: str) -> bool:
        try:
            return self.low <= date.fromisoformat(text) <= self.high
        except ValueError:
            return False

    def _plan(self, table: str, row: asyncpg.Record, column: str, value: Any) -> tuple[int, Any]:
        if column == "pk":
            return (_PK, value)
        if column == "resource_pk":
            return (_RESOURCE_PK, value)
        if column == "content_hash" and row["pk"] in self.template.hashed:
            hashed = self.template.hashed[row["pk"]].decode()
            return (_HASH, self._pieces(hashed) or [(0, hashed)])
        if isinstance(value, str):
            pieces = self._pieces(value)
            return (_CONST, value) if pieces is None else (_TEXT, pieces)
        if isinstance(value, bytes):
            pieces = self._pieces(value.decode())
            return (_CONST, value) if pieces is None else (_BYTES, pieces)
        if isinstance(value, datetime):
            return (_MOMENT, value) if self.low <= value.date() <= self.high else (_CONST, value)
        if isinstance(value, date):
            return (_DAY, value) if self.low <= value <= self.high else (_CONST, value)
        return (_CONST, value)

    def shifted(self, text: str, days: int) -> str:
        key = (text, days)
        found = self._dates.get(key)
        if found is None:
            day = date.fromisoformat(text)
            found = self._dates[key] = (day - timedelta(days=days)).isoformat()
        return found

    def join(self, pieces: list[tuple[int, str]], ids: dict[str, str], days: int) -> str:
        shifted = self.shifted
        return "".join(p if k == 0 else ids[p] if k == 1 else shifted(p, days) for k, p in pieces)


def new_ids(template: Template, index: int, rng: random.Random) -> dict[str, str]:
    """New record ids (random), MRN and member id (from ``index``), and the FHIR ids derived from them as the
    mappings derive them."""
    made = {}
    for old in template.ids:
        if old in template.derived:
            continue
        if old.startswith("SBX"):
            made[old] = f"SBX{index:08d}"
        elif old.startswith("NC9"):
            made[old] = f"NC{index:09d}"
        else:
            made[old] = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    for old, (kind, domain_id) in template.derived.items():
        for record_id, new in made.items():
            domain_id = domain_id.replace(record_id, new)
        made[old] = fhir_id(template.system, kind, domain_id)
    return made


class PkCounter:
    def __init__(self, starts: dict[str, int]) -> None:
        self.next = dict(starts)

    def take(self, table: str) -> int:
        value = self.next[table]
        self.next[table] = value + 1
        return value


def copy_rows(
    copier: Copier, index: int, rng: random.Random, pks: PkCounter, out: dict[str, list[tuple[Any, ...]]]
) -> tuple[str, str]:
    """Appends one participant's rows to ``out`` (per table, in column order); returns its (Patient id, MRN)."""
    template = copier.template
    ids = new_ids(template, index, rng)
    days = rng.randrange(SHIFT_DAYS + 1)
    delta = timedelta(days=days)
    join = copier.join
    resource_pks: dict[int, int] = {}
    for table, plans in copier.plans.items():
        target = out[table]
        for plan in plans:
            values: list[Any] = []
            for kind, value in plan:
                if kind == _CONST:
                    values.append(value)
                elif kind == _TEXT:
                    values.append(join(value, ids, days))
                elif kind == _BYTES:
                    values.append(join(value, ids, days).encode())
                elif kind == _PK:
                    new_pk = pks.take(table)
                    if table == "fhir_resources":
                        resource_pks[value] = new_pk
                    values.append(new_pk)
                elif kind == _RESOURCE_PK:
                    values.append(resource_pks[value])
                elif kind == _HASH:
                    values.append(hashlib.sha256(join(value, ids, days).encode()).hexdigest())
                else:  # a moved date or datetime
                    values.append(value - delta)
            target.append(tuple(values))
    mrn = next((v for k, v in ids.items() if k.startswith("SBX")), "")
    return ids[template.patient_id], mrn


# --- the load --------------------------------------------------------------------------------------------------
async def _plain_indexes(conn: asyncpg.Connection) -> list[tuple[str, str]]:
    """(name, definition) of the loaded tables' indexes that back no constraint."""
    rows = await conn.fetch(
        "SELECT i.indexname, i.indexdef FROM pg_indexes i WHERE i.schemaname = 'public' "
        "AND i.tablename = ANY($1::text[]) "
        "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)",
        list(LOADED_TABLES),
    )
    return [(r["indexname"], r["indexdef"]) for r in rows]


async def _constraint_indexes(conn: asyncpg.Connection) -> list[tuple[str, str, str, str]]:
    """(table, constraint, PRIMARY KEY or UNIQUE, index definition) of the loaded tables' primary keys and
    unique constraints that no foreign key references: dropped for the load (a row's insert into a B-tree
    keyed by a random uuid costs more than a sort-built index after), made again: index first, then attached."""
    rows = await conn.fetch(
        "SELECT c.conrelid::regclass::text AS t, c.conname, c.contype::text AS contype, "
        "pg_get_indexdef(c.conindid) AS definition "
        "FROM pg_constraint c WHERE c.contype IN ('p', 'u') AND c.conrelid::regclass::text = ANY($1::text[]) "
        "AND NOT EXISTS (SELECT 1 FROM pg_constraint f WHERE f.contype = 'f' AND f.conindid = c.conindid)",
        list(LOADED_TABLES),
    )
    kinds = {"p": "PRIMARY KEY", "u": "UNIQUE"}
    return [(r["t"], r["conname"], kinds[r["contype"]], r["definition"]) for r in rows]


WORKERS = 3
"""Processes generating and copying at once, each over a connection of its own (2 cores: the server's COPY of
one overlaps the Python generation of another)."""
INDEX_BUILDERS = 2
"""Connections making the dropped indexes again (and vacuuming) at once."""
_FORKED: list[Copier] = []
"""The copiers, handed to the worker processes by fork (a template's asyncpg records do not pickle)."""


def _starts_at(copiers: list[Copier], starts: dict[str, int], first: int) -> dict[str, int]:
    """The first pk of each table for participant ``first`` (the participants before it take theirs in turn)."""
    count = len(copiers)
    cycles, rest = divmod(first, count)
    made = dict(starts)
    for n, copier in enumerate(copiers):
        times = cycles + (1 if n < rest else 0)
        for table, rows in copier.template.rows.items():
            made[table] += times * len(rows)
    return made


def _worker(
    url: str, columns: dict[str, list[str]], starts: dict[str, int], first: int, last: int, seed: int, talk: bool
) -> tuple[list[tuple[str, str]], dict[str, int]]:
    """In a worker process: participants ``first``..``last`` made and copied over a connection of its own."""
    return asyncio.run(_copy_range(url, columns, starts, first, last, seed, talk))


async def _copy_range(
    url: str, columns: dict[str, list[str]], starts: dict[str, int], first: int, last: int, seed: int, talk: bool
) -> tuple[list[tuple[str, str]], dict[str, int]]:
    copiers = _FORKED
    rng = random.Random(seed)
    pks = PkCounter(_starts_at(copiers, starts, first))
    patients: list[tuple[str, str]] = []
    counts: dict[str, int] = {}
    began = time.perf_counter()
    conn = await asyncpg.connect(dsn(url))
    try:
        await conn.execute("SET session_replication_role = replica; SET synchronous_commit = off")
        for at in range(first, last, BATCH):
            out: dict[str, list[tuple[Any, ...]]] = {t: [] for t in LOADED_TABLES}
            for index in range(at, min(at + BATCH, last)):
                patients.append(copy_rows(copiers[index % len(copiers)], index, rng, pks, out))
            async with conn.transaction():
                for table, records in out.items():
                    if records:
                        await conn.copy_records_to_table(table, records=records, columns=columns[table])
                        counts[table] = counts.get(table, 0) + len(records)
            if talk and (at - first) // BATCH % 10 == 9:
                print(f"  worker 1: {at + BATCH - first} participants, {time.perf_counter() - began:.0f} s", flush=True)
    finally:
        await conn.close()
    return patients, counts


async def _each(url: str, statements: list[str], connections: int) -> None:
    """The statements run over ``connections`` connections at once, each taking the next."""
    queue = list(reversed(statements))

    async def runner() -> None:
        conn = await asyncpg.connect(dsn(url))
        try:
            await conn.execute("SET maintenance_work_mem = '512MB'")
            while queue:
                await conn.execute(queue.pop())
        finally:
            await conn.close()

    await asyncio.gather(*(runner() for _ in range(connections)))


async def load(
    url: str,
    templates: list[Template],
    participants: int,
    seed: int = 21,
    progress: Callable[[str], None] | None = None,
) -> LoadReport:
    """``participants`` copies of the templates (in turn) into the database at ``url``: WORKERS processes
    each COPY a share over a connection of their own; the plain indexes are dropped before and made again
    after (INDEX_BUILDERS at once, the largest first), then VACUUM (ANALYZE) so index-only scans hold."""
    report = LoadReport(participants=participants)
    today = datetime.now(UTC).date()
    _FORKED[:] = [Copier(t, today) for t in templates]
    began = time.perf_counter()
    conn = await asyncpg.connect(dsn(url))
    try:
        columns: dict[str, list[str]] = {}
        starts: dict[str, int] = {}
        for table in LOADED_TABLES:
            columns[table] = [
                r["attname"]
                for r in await conn.fetch(
                    "SELECT attname FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 "
                    "AND NOT attisdropped ORDER BY attnum",
                    table,
                )
            ]
            starts[table] = (await conn.fetchval(f"SELECT coalesce(max(pk), 0) FROM {table}")) + 1
        for template in templates:  # the record's own column order, as COPY takes it
            for table, rows in template.rows.items():
                assert not rows or list(rows[0].keys()) == columns[table], table
        indexes = await _plain_indexes(conn)
        for name, _ in indexes:
            await conn.execute(f'DROP INDEX "{name}"')
        constraints = await _constraint_indexes(conn)
        for table, name, _, definition in constraints:
            await conn.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
            indexes.append((name, definition))
        sizes = {t: sum(len(c.template.rows.get(t, [])) for c in _FORKED) for t in LOADED_TABLES}
    finally:
        await conn.close()
    share = -(-participants // WORKERS)
    ranges = [(a, min(a + share, participants)) for a in range(0, participants, share)]
    loop = asyncio.get_running_loop()
    with ProcessPoolExecutor(len(ranges), mp_context=multiprocessing.get_context("fork")) as pool:
        jobs = [
            loop.run_in_executor(pool, _worker, url, columns, starts, a, b, seed + n, progress is not None and n == 0)
            for n, (a, b) in enumerate(ranges)
        ]
        for patients, counts in await asyncio.gather(*jobs):
            report.patients += patients
            for table, n in counts.items():
                report.rows[table] = report.rows.get(table, 0) + n
    copied = time.perf_counter()
    if progress:
        progress(f"  copied in {copied - began:.0f} s; indexes and VACUUM (ANALYZE) next")
    indexes.sort(key=lambda item: -sizes.get(item[1].split(" ON public.")[1].split(" ")[0], 0))
    await _each(url, [definition for _, definition in indexes], INDEX_BUILDERS)
    attach = [
        f'ALTER TABLE {t} ADD CONSTRAINT "{name}" {kind} USING INDEX "{name}"' for t, name, kind, _ in constraints
    ]
    await _each(url, attach, 1)
    indexed = time.perf_counter()
    if progress:
        progress(f"  indexes in {indexed - copied:.0f} s")
    sequences = [
        f"SELECT setval(pg_get_serial_sequence('{table}', 'pk'), (SELECT max(pk) FROM {table}))"
        for table in LOADED_TABLES
    ]
    await _each(url, sequences, 1)
    ordered = sorted(LOADED_TABLES, key=lambda t: -sizes[t])
    await _each(url, [f"VACUUM (ANALYZE) {table}" for table in ordered], INDEX_BUILDERS)
    if progress:
        progress(f"  VACUUM (ANALYZE) in {time.perf_counter() - indexed:.0f} s")
    report.seconds = time.perf_counter() - began
    return report


def chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
