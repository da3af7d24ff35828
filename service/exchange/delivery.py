"""One delivery: the FHIR a queued change means for an EHR, written so that a retry never duplicates.

Each resource goes as ``PUT [type]/[our deterministic id]`` where the EHR accepts updates of the
type (update-as-create), else as a conditional create (``If-None-Exist: identifier=...``), else not
at all (a dependency the EHR will not take is left to it; the change itself is dead-lettered). The
resources a change references (its Patient, Practitioner, Organization, Encounter) go first.
Everything goes in one transaction Bundle when the EHR's CapabilityStatement says it takes them.
Content the EHR holds already, unchanged, is not sent again.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
import orjson
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from service.auth.boundary import compartment_patient
from service.domain import Program
from service.records.fhir_preview import fhir_resources
from service.store import RecordRepository
from service.store import kinds as k
from service.store.tables import ehr_resources
from service.store.tables import fhir_resources as projection

from .connections import EhrConnection
from .smart_client import SmartClient, TokenFailure

PREVIEW_KIND = {"encounter": "encounter", "note": "note", "care-team": "care-team"}
DEPENDENCY_TYPES = ("Organization", "Practitioner", "PractitionerRole", "Patient", "Encounter")
ORDER = {t: i for i, t in enumerate((*DEPENDENCY_TYPES, "DocumentReference", "CareTeam"))}
_REFERENCE_IN_JSON = re.compile(rb'"reference"\s*:\s*"([A-Z][A-Za-z]+/[A-Za-z0-9\-.]{1,64})"')
"""A relative reference anywhere in a resource's JSON (inside a string, quotes are escaped: no match)."""
TERMINAL_TASK = frozenset({"cancelled", "completed", "failed", "rejected", "entered-in-error"})


class Retryable(Exception):
    def __init__(self, reason: str, retry_after: float | None = None, token: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
        self.token = token


class Permanent(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Outgoing:
    """One resource on its way to an EHR: its reference, content hash and the references it makes.
    A resource read from the projection keeps its stored bytes and hash, and is parsed only if sent
    (most dependencies of a change are held by the EHR already, unchanged)."""

    __slots__ = ("_body", "_resource", "content_hash", "primary", "references", "resource_id", "resource_type")

    def __init__(self, resource: dict[str, Any], primary: bool) -> None:
        canonical = orjson.dumps(resource, option=orjson.OPT_SORT_KEYS)
        self.resource_type: str = resource["resourceType"]
        self.resource_id: str = resource["id"]
        self.primary = primary
        self.content_hash = hashlib.sha256(canonical).hexdigest()
        self.references = _references_in(canonical)
        self._body: bytes | None = None
        self._resource: dict[str, Any] | None = resource

    @classmethod
    def stored(cls, resource_type: str, resource_id: str, body: bytes, content_hash: str, primary: bool) -> Outgoing:
        """A resource of the projection: its bytes, and the hash the projection keeps of its content."""
        item = cls.__new__(cls)
        item.resource_type, item.resource_id, item.primary = resource_type, resource_id, primary
        item.content_hash = content_hash
        item.references = _references_in(body)
        item._body, item._resource = body, None
        return item

    @property
    def resource(self) -> dict[str, Any]:
        if self._resource is None:
            assert self._body is not None
            self._resource = _from_projection(self._body)
        return self._resource

    @property
    def reference(self) -> str:
        return f"{self.resource_type}/{self.resource_id}"

    @property
    def rank(self) -> tuple[int, str]:
        """Where it goes in a delivery: what others reference first."""
        return ORDER.get(self.resource_type, 99), self.reference


def _references_in(document: bytes) -> tuple[str, ...]:
    """The relative references (``Type/id``) anywhere in a resource's JSON, in document order."""
    return tuple(match.decode() for match in _REFERENCE_IN_JSON.findall(document))


@dataclass
class Delivered:
    """What one delivery wrote: our reference -> the EHR's id, and the content hash sent."""

    written: dict[str, tuple[str, str]] = field(default_factory=dict)
    patients: set[str] = field(default_factory=set)


def _note_patient(delivered: Delivered, item: Outgoing) -> None:
    """Whose data went out (the accounting of disclosures lists every delivery of a person's data)."""
    patient = compartment_patient(item.resource)
    if patient:
        delivered.patients.add(patient)


PRIMARY_TYPE = {"encounter": "Encounter", "note": "DocumentReference", "care-team": "CareTeam"}


def _from_projection(body: bytes) -> dict[str, Any]:
    """A stored resource as it is sent: our version and timestamp are ours, not the EHR's."""
    resource: dict[str, Any] = orjson.loads(body)
    meta = {k: v for k, v in (resource.get("meta") or {}).items() if k not in ("versionId", "lastUpdated")}
    if meta:
        resource["meta"] = meta
    else:
        resource.pop("meta", None)
    return resource


async def _dependency(
    conn: AsyncConnection, program: Program, connection: EhrConnection, reference: str
) -> list[dict[str, Any]]:
    """A referenced resource mapped with the connection's overlay (the resources of its source record)."""
    resource_type, resource_id = reference.split("/")
    p = projection.c
    row = (
        await conn.execute(
            select(p.source_kind, p.source_id).where(
                p.program_id == program.id, p.resource_type == resource_type, p.resource_id == resource_id
            )
        )
    ).first()
    if row is None:
        return []
    return await fhir_resources(conn, program, row.source_kind, row.source_id, connection.profile)


async def collect(
    conn: AsyncConnection,
    program: Program,
    connection: EhrConnection,
    kind: str,
    record_id: str,
    seen: dict[str, list[dict[str, Any]]] | None = None,
) -> list[Outgoing]:
    """The change's resources and what they reference, mapped for the connection (with its overlay),
    in the order an EHR needs them. ``seen`` remembers dependencies across the changes of a batch."""
    if connection.profile == "generic":
        return await collect_many(conn, program, connection, [(kind, record_id)])
    seen = {} if seen is None else seen
    mapped = await fhir_resources(conn, program, PREVIEW_KIND[kind], record_id, connection.profile)
    outgoing = {f"{r['resourceType']}/{r['id']}": Outgoing(r, True) for r in mapped}
    pending = [ref for o in list(outgoing.values()) for ref in o.references]
    while pending:
        reference = pending.pop()
        if reference in outgoing or reference.split("/")[0] not in DEPENDENCY_TYPES:
            continue
        if reference not in seen:
            seen[reference] = await _dependency(conn, program, connection, reference)
        for resource in seen[reference]:
            key = f"{resource['resourceType']}/{resource['id']}"
            if key not in outgoing and resource["resourceType"] in DEPENDENCY_TYPES:
                outgoing[key] = Outgoing(resource, False)
                pending += outgoing[key].references
    return sorted(outgoing.values(), key=lambda o: o.rank)


async def collect_many(
    conn: AsyncConnection, program: Program, connection: EhrConnection, changes: list[tuple[str, str]]
) -> list[Outgoing]:
    """``collect`` for a batch of (kind, record id), a few statements in all when the EHR takes the
    generic mapping (the projection's bytes): the changes' resources, then each level of references."""
    if connection.profile != "generic":
        seen: dict[str, list[dict[str, Any]]] = {}
        merged: dict[str, Outgoing] = {}
        for kind, record_id in changes:
            for item in await collect(conn, program, connection, kind, record_id, seen):
                if item.reference not in merged or (item.primary and not merged[item.reference].primary):
                    merged[item.reference] = item
        return sorted(merged.values(), key=lambda o: o.rank)
    p = projection.c
    wanted = {(PREVIEW_KIND[kind], record_id) for kind, record_id in changes}
    columns = (p.program_id, p.source_kind, p.source_id, p.resource_type, p.resource_id, p.content_hash, p.body)
    rows = await conn.execute(  # by the (source_kind, source_id) index alone: the program is checked below
        select(*columns).where(
            p.source_kind.in_(sorted({kind for kind, _ in wanted})),
            p.source_id.in_(sorted({record_id for _, record_id in wanted})),
        )
    )
    outgoing: dict[str, Outgoing] = {}
    for row in rows:
        if (
            row.program_id == program.id
            and (row.source_kind, row.source_id) in wanted
            and row.resource_type == PRIMARY_TYPE.get(row.source_kind)
        ):
            item = Outgoing.stored(row.resource_type, row.resource_id, row.body, row.content_hash, True)
            outgoing[item.reference] = item
    level = {ref for o in outgoing.values() for ref in o.references}
    while level:
        missing = {r for r in level if r not in outgoing and r.split("/")[0] in DEPENDENCY_TYPES}
        if not missing:
            break
        found = await conn.execute(
            select(*columns).where(
                p.program_id == program.id,
                p.resource_id.in_(sorted({r.split("/")[1] for r in missing})),
                p.resource_type.in_(sorted({r.split("/")[0] for r in missing})),
            )
        )
        level = set()
        for row in found:
            key = f"{row.resource_type}/{row.resource_id}"
            if key in missing and key not in outgoing:
                outgoing[key] = Outgoing.stored(row.resource_type, row.resource_id, row.body, row.content_hash, False)
                level.update(outgoing[key].references)
    return sorted(outgoing.values(), key=lambda o: o.rank)


async def source_of(conn: AsyncConnection, program_id: str, reference: str) -> tuple[str, str] | None:
    """(record id, participant id) of one of our Encounters, from its FHIR reference."""
    resource_type, resource_id = reference.split("/", 1)
    p = projection.c
    row = (
        await conn.execute(
            select(p.source_id).where(
                p.program_id == program_id, p.resource_type == resource_type, p.resource_id == resource_id
            )
        )
    ).first()
    if row is None:
        return None
    found = await RecordRepository(k.ENCOUNTERS).find(conn, program_id, row.source_id)
    return (found.id, found.participant_id) if found is not None else None


async def held(conn: AsyncConnection, connection: str, references: list[str]) -> dict[str, tuple[str, str]]:
    """our reference -> (EHR id, content hash) of what the EHR was last sent."""
    e = ehr_resources.c
    if not references:
        return {}
    types = sorted({r.split("/")[0] for r in references})
    ids = sorted({r.split("/")[1] for r in references})
    rows = await conn.execute(
        select(e.resource_type, e.resource_id, e.ehr_id, e.content_hash).where(
            e.connection == connection, e.resource_type.in_(types), e.resource_id.in_(ids)
        )
    )
    wanted = set(references)
    return {
        f"{r.resource_type}/{r.resource_id}": (r.ehr_id, r.content_hash)
        for r in rows
        if f"{r.resource_type}/{r.resource_id}" in wanted
    }


async def remember(conn: AsyncConnection, connection: str, delivered: Delivered, now: datetime) -> None:
    """What the EHR now holds, in one statement (an upsert per resource, executed as a batch)."""
    if not delivered.written:
        return
    dialect = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    statement = dialect(ehr_resources)
    statement = statement.on_conflict_do_update(
        index_elements=["connection", "resource_type", "resource_id"],
        set_={
            "ehr_id": statement.excluded.ehr_id,
            "content_hash": statement.excluded.content_hash,
            "delivered_at": statement.excluded.delivered_at,
        },
    )
    rows = [
        {
            "connection": connection,
            "resource_type": reference.split("/")[0],
            "resource_id": reference.split("/")[1],
            "ehr_id": ehr_id,
            "content_hash": content_hash,
            "delivered_at": now,
        }
        for reference, (ehr_id, content_hash) in delivered.written.items()
    ]
    await conn.execute(statement, rows)


# --- what the EHR accepts ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Capabilities:
    interactions: dict[str, frozenset[str]]
    conditional_create: dict[str, bool]
    transaction: bool

    @classmethod
    def of(cls, statement: dict[str, Any]) -> Capabilities:
        interactions: dict[str, frozenset[str]] = {}
        conditional: dict[str, bool] = {}
        transaction = False
        for rest in statement.get("rest", []):
            transaction = transaction or any(i.get("code") == "transaction" for i in rest.get("interaction", []))
            for resource in rest.get("resource", []):
                codes = frozenset(i.get("code") for i in resource.get("interaction", []))
                interactions[resource.get("type", "")] = codes
                conditional[resource.get("type", "")] = bool(resource.get("conditionalCreate"))
        return cls(interactions, conditional, transaction)

    def method(self, resource_type: str) -> str | None:
        codes = self.interactions.get(resource_type, frozenset())
        if "update" in codes:
            return "PUT"
        if "create" in codes:
            return "POST"
        return None


def _identifier_query(resource: dict[str, Any]) -> str | None:
    for identifier in resource.get("identifier") or []:
        if identifier.get("system") and identifier.get("value"):
            return f"identifier={identifier['system']}|{identifier['value']}"
    return None


def _rewritten(item: Outgoing, mapping: dict[str, str]) -> dict[str, Any]:
    """The resource with its references pointing at the EHR's ids; the resource itself when the EHR
    holds everything it references under our ids (an EHR that takes PUT)."""
    if all(mapping.get(reference, reference) == reference for reference in item.references):
        return item.resource
    rewritten: dict[str, Any] = _rewrite(item.resource, mapping)
    return rewritten


def _json(response: httpx.Response) -> Any:
    """The body of an answer, parsed by orjson (raises ValueError when it is not JSON)."""
    return orjson.loads(response.content)


def _rewrite(value: Any, mapping: dict[str, str]) -> Any:
    if isinstance(value, dict):
        out = {k: _rewrite(v, mapping) for k, v in value.items()}
        reference = out.get("reference")
        if isinstance(reference, str) and reference in mapping:
            out["reference"] = mapping[reference]
        return out
    if isinstance(value, list):
        return [_rewrite(v, mapping) for v in value]
    return value


def _outcome_text(response: httpx.Response) -> str:
    """Status and OperationOutcome issue codes only: an EHR's diagnostics may echo patient data."""
    try:
        body = _json(response)
        codes = [i.get("code", "?") for i in body.get("issue", [])] if isinstance(body, dict) else []
    except ValueError:
        codes = []
    return f"HTTP {response.status_code}" + (f" ({', '.join(codes)})" if codes else "")


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            moment = datetime.strptime(value, "%a, %d %b %Y %H:%M:%S GMT")
            return max(0.0, moment.timestamp() - datetime.now().timestamp())
        except ValueError:
            return None


def check(response: httpx.Response) -> None:
    """Raise what a non-2xx answer means for the delivery."""
    status = response.status_code
    if 200 <= status < 300:
        return
    if status in (429, 503):
        raise Retryable(_outcome_text(response), _retry_after(response))
    if status == 401:
        raise Retryable("HTTP 401 after a fresh token", token=True)
    if status >= 500 or status in (408, 409, 412, 423, 425):
        raise Retryable(_outcome_text(response), _retry_after(response))
    raise Permanent(_outcome_text(response))


async def send(
    client: SmartClient, outgoing: list[Outgoing], known: dict[str, tuple[str, str]], batched: bool
) -> Delivered:
    """Write what the EHR lacks or holds in another version; returns what was written. When the EHR
    refuses a write that left out resources it should already hold (it may have lost them: a restore,
    a reset sandbox), everything is sent once more before the refusal counts."""
    try:
        return await _send(client, outgoing, known, batched)
    except Permanent:
        skipped = any(known.get(o.reference, ("", ""))[1] == o.content_hash for o in outgoing)
        if not skipped:
            raise
        return await _send(client, outgoing, {}, batched)


async def _send(
    client: SmartClient, outgoing: list[Outgoing], known: dict[str, tuple[str, str]], batched: bool
) -> Delivered:
    try:
        capabilities = Capabilities.of(await client.capabilities())
    except httpx.HTTPStatusError as error:
        check(error.response)
        raise Retryable("the CapabilityStatement could not be read") from None
    except (httpx.TransportError, ValueError) as error:
        raise Retryable(f"the CapabilityStatement could not be read: {type(error).__name__}") from None
    mapping = {ref: f"{ref.split('/')[0]}/{ehr_id}" for ref, (ehr_id, _) in known.items()}
    todo: list[tuple[Outgoing, str]] = []
    for item in outgoing:
        method = capabilities.method(item.resource_type)
        if method is None or (method == "POST" and _identifier_query(item.resource) is None):
            if item.primary:
                raise Permanent(f"the EHR accepts no writes of {item.resource_type}")
            continue
        if known.get(item.reference, ("", ""))[1] == item.content_hash:
            continue
        todo.append((item, method))
    delivered = Delivered()
    if not todo:
        return delivered
    try:
        if batched and capabilities.transaction and len(todo) > 1:
            await _transaction(client, todo, mapping, delivered)
        else:
            for item, method in todo:
                await _single(client, item, method, mapping, delivered)
    except TokenFailure as error:
        raise Retryable(str(error), token=True) from None
    except httpx.TimeoutException as error:
        raise Retryable(f"timeout: {type(error).__name__}") from None
    except httpx.TransportError as error:
        raise Retryable(f"connection failed: {type(error).__name__}") from None
    return delivered


async def _single(
    client: SmartClient, item: Outgoing, method: str, mapping: dict[str, str], delivered: Delivered
) -> None:
    resource_type, our_id = item.resource_type, item.resource_id
    body = _rewritten(item, mapping)
    headers = {"Content-Type": "application/fhir+json"}
    if method == "PUT":
        response = await client.request("PUT", f"{resource_type}/{our_id}", content=orjson.dumps(body), headers=headers)
        check(response)
        ehr_id = our_id
    else:
        query = _identifier_query(item.resource)
        assert query is not None
        create = {k: v for k, v in body.items() if k not in ("id", "meta")}
        headers["If-None-Exist"] = query
        response = await client.request("POST", resource_type, content=orjson.dumps(create), headers=headers)
        check(response)
        ehr_id = _id_from(response, resource_type)
    mapping[item.reference] = f"{resource_type}/{ehr_id}"
    delivered.written[item.reference] = (ehr_id, item.content_hash)
    _note_patient(delivered, item)


def _id_from(response: httpx.Response, resource_type: str) -> str:
    location = response.headers.get("location") or response.headers.get("content-location") or ""
    match = re.search(rf"{resource_type}/([A-Za-z0-9\-.]{{1,64}})", location)
    if match:
        return match.group(1)
    try:
        body = _json(response)
    except ValueError:
        raise Retryable("the EHR's answer to a create is not JSON and names no Location") from None
    found = body.get("id") if isinstance(body, dict) else None
    if not isinstance(found, str):
        raise Retryable("the EHR's answer to a create names no id")
    return found


async def _transaction(
    client: SmartClient, todo: list[tuple[Outgoing, str]], mapping: dict[str, str], delivered: Delivered
) -> None:
    local = dict(mapping)
    for item, method in todo:  # what this Bundle creates is referenced by its fullUrl
        if method == "POST":
            local[item.reference] = f"urn:uuid:{item.resource_id}"
    entries = []
    for item, method in todo:
        resource_type, our_id = item.resource_type, item.resource_id
        body = _rewritten(item, local)
        request: dict[str, Any]
        if method == "PUT":
            request = {"method": "PUT", "url": f"{resource_type}/{our_id}"}
            full_url = f"{client.base}/{resource_type}/{our_id}"
        else:
            body = {k: v for k, v in body.items() if k not in ("id", "meta")}
            request = {"method": "POST", "url": resource_type, "ifNoneExist": _identifier_query(item.resource)}
            full_url = f"urn:uuid:{our_id}"
        entries.append({"fullUrl": full_url, "resource": body, "request": request})
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
    response = await client.request(
        "POST", "", content=orjson.dumps(bundle), headers={"Content-Type": "application/fhir+json"}
    )
    check(response)
    try:
        answered = _json(response).get("entry") or []
    except (ValueError, AttributeError):
        raise Retryable("the EHR's transaction response is not valid JSON") from None
    if len(answered) != len(todo):
        raise Retryable("the EHR's transaction response does not answer every entry")
    for (item, method), entry in zip(todo, answered, strict=True):
        resource_type = item.resource_type
        location = (entry.get("response") or {}).get("location") or ""
        match = re.search(rf"{resource_type}/([A-Za-z0-9\-.]{{1,64}})", location)
        ehr_id = item.resource_id if method == "PUT" or match is None else match.group(1)
        mapping[item.reference] = f"{resource_type}/{ehr_id}"
        delivered.written[item.reference] = (ehr_id, item.content_hash)
        _note_patient(delivered, item)


# --- the closed loop: our referral's progress onto the clinic's Task at the EHR ------------------


TASK_PROGRESS = ("status", "statusReason", "businessStatus", "output", "lastModified")


async def update_task(client: SmartClient, task_id: str, ours: dict[str, Any], attempts: int = 3) -> bool:
    """Apply our Task's progress to the EHR's Task with If-Match; a 412 re-reads and re-applies while
    the transition is still legal. False when the EHR already shows it."""
    for _ in range(attempts):
        try:
            response = await client.request("GET", f"Task/{task_id}")
            check(response)
            current = _json(response)
        except TokenFailure as error:
            raise Retryable(str(error), token=True) from None
        except httpx.TransportError as error:
            raise Retryable(f"connection failed: {type(error).__name__}") from None
        except ValueError:
            raise Retryable("the EHR's Task is not valid JSON") from None
        if all(current.get(name) == ours.get(name) for name in TASK_PROGRESS if name != "lastModified"):
            return False
        if current.get("status") in TERMINAL_TASK and current.get("status") != ours.get("status"):
            raise Permanent(f"the EHR's Task is {current.get('status')}; the referral's transition no longer applies")
        wanted = {**current, **{name: ours[name] for name in TASK_PROGRESS if name in ours}}
        for name in TASK_PROGRESS:
            if name not in ours:
                wanted.pop(name, None)
        version = (current.get("meta") or {}).get("versionId") or ""
        headers = {"Content-Type": "application/fhir+json"}
        if version:
            headers["If-Match"] = f'W/"{version}"'
        try:
            answer = await client.request("PUT", f"Task/{task_id}", content=orjson.dumps(wanted), headers=headers)
        except TokenFailure as error:
            raise Retryable(str(error), token=True) from None
        except httpx.TransportError as error:
            raise Retryable(f"connection failed: {type(error).__name__}") from None
        if answer.status_code == 412:
            continue
        check(answer)
        return True
    raise Retryable("the EHR's Task kept changing (412 on every attempt)")
