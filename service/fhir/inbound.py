"""Inbound FHIR from clinics and hospitals: a referral (ServiceRequest, its Task), the person it is
for, conditional creates, transaction Bundles and the clinic's updates of its Task.

What comes in goes through the mappings into domain records (``service.records.operations``), never
into the store as the JSON that was sent; callers get back the projection their write produced.

Decisions (Gravity SDOH closed-loop referral; FHIR R4 RESTful API):
- A Patient from a hospital is matched to a participant by that hospital's MRN (identifier system
  and value, identifier typed MR). With no match a participant is created from the Patient and
  flagged for review (``review_flags``). A matched participant's record is left as it is.
- The clinic's own identifiers of its order (ServiceRequest.identifier) are kept on the referral and
  claimed in ``external_identifiers`` in the same transaction; so are the MRNs of participants made
  here. A resend of an order we hold returns the referral it made (200), with or without
  If-None-Exist; two concurrent deliveries collide on the unique key and the loser runs again,
  finding the winner's records.
- A new referral must be open: ServiceRequest.status active/draft/on-hold, Task.status requested/draft.
- A Task sent on its own must restate a ServiceRequest we hold (its focus): it creates nothing.
- On the Task PeerLink serves, the clinic (the requester) may only cancel: status cancelled (or
  entered-in-error) with a statusReason, through PUT or JSON Patch. Every other element is the peer
  program's to set; a change to one is refused naming it. businessStatus, lastModified, meta and
  text in an update are ignored (PeerLink sets them).
- Transaction Bundles: POST Patient / ServiceRequest / Task and PUT Task/{id}, processed in that
  order in one database transaction; urn:uuid fullUrls resolve between entries. Batch is refused.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import parse_qsl

import orjson
from pydantic import ValidationError
from sqlalchemy import exists, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from mappings import patient as patient_map
from mappings import referral as referral_map
from mappings.context import MappingContext, MappingError, check_valid
from service.domain import ParticipantFields, Program, Referral, ReferralAction, ReferralStatus, TransitionRequest
from service.domain.common import IdentifierType
from service.domain.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    InvalidResource,
    NotFound,
    PatchFailed,
    PreconditionFailed,
    RuleViolation,
)
from service.domain.participant import Participant
from service.records import operations
from service.records.types import PARTICIPANTS, REFERRALS
from service.store import Database, RecordRepository
from service.store import kinds as k
from service.store.tables import external_identifiers, fhir_resources, fhir_search, review_flags

from . import repository
from .bundle import splice
from .projection import instant
from .search_params import SEARCH_PARAMS, ParamType

T = TypeVar("T")

REFERRAL = "referral"
PARTICIPANT = "participant"
CLINIC = "clinic"  # who takes the steps a clinic asks for, in the referral's transitions
CLINIC_MAY_CHANGE = ("status", "statusReason")
IGNORED_ON_UPDATE = frozenset({"id", "meta", "text", "businessStatus", "lastModified"})
NEW_PARTICIPANT_REVIEW = "created from a hospital's Patient: no participant had its MRN"
ATTEMPTS = 3
_LITERAL = re.compile(r"(?:^|/)(?P<type>[A-Za-z]+)/(?P<id>[A-Za-z0-9\-.]{1,64})(?:/_history/[^/]+)?$")
_CONDITIONAL_TYPES = (ParamType.TOKEN, ParamType.REFERENCE)


class IdentifierClash(Exception):
    """Another transaction claimed the same external identifier first: run the work again."""


def invalid(element: str, reason: str) -> InvalidResource:
    return InvalidResource(f"{element}: {reason}", errors=[{"expression": element}])


def refused(element: str, reason: str) -> RuleViolation:
    return RuleViolation(f"{element}: {reason}", errors=[{"expression": element}])


def bad_request(element: str, reason: str) -> BadRequest:
    return BadRequest(f"{element}: {reason}", errors=[{"expression": element}])


@dataclass(frozen=True)
class Where:
    """Where each resource of a request sits, so that an error names the element as it was sent:
    ``ServiceRequest.subject`` inside a transaction becomes ``Bundle.entry[1].resource.subject``."""

    roots: Mapping[str, str] = field(default_factory=dict)

    def __call__(self, element: str) -> str:
        for resource_type, root in self.roots.items():
            if element == resource_type:
                return root
            if element.startswith((f"{resource_type}.", f"{resource_type}[", f"{resource_type} ")):
                return root + element[len(resource_type) :]
        return element

    def with_(self, resource_type: str, root: str) -> Where:
        return Where({**self.roots, resource_type: root})


PLAIN = Where()


def _from_mapping(exc: MappingError, where: Where, resource_type: str) -> InvalidResource:
    element = exc.element if exc.element != "resourceType" else f"{resource_type}.resourceType"
    return invalid(where(element), exc.reason)


@dataclass(frozen=True)
class Outcome:
    """What one interaction left in the store: the resource to answer with, and whether it is new."""

    resource_type: str
    resource_id: str
    created: bool


async def written(
    conn: AsyncConnection, program_id: str, outcome: Outcome, organization: str | None = None
) -> repository.StoredResource:
    """The stored resource an interaction left; a sender may only write what it may then read."""
    try:
        return await repository.current(conn, program_id, outcome.resource_type, outcome.resource_id, organization)
    except NotFound:
        if organization is None:
            raise
        raise Forbidden(
            f"the {outcome.resource_type} written lies outside this client's data boundary "
            "(a referral must name the client's organisation as its requester)"
        ) from None


async def run(database: Database, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
    """``work`` in one transaction; when a concurrent delivery claimed the same identifier first the
    transaction is rolled back and the work runs again (it then finds what the other one stored)."""
    attempt = 1
    while True:
        try:
            async with database.transaction() as conn:
                return await work(conn)
        except IdentifierClash:
            if attempt == ATTEMPTS:
                raise Conflict("a concurrent request stored the same identifiers; send it again") from None
            attempt += 1


# --- lookups -------------------------------------------------------------------------------------
async def source_of(conn: AsyncConnection, program_id: str, resource_type: str, resource_id: str) -> str | None:
    """The domain id of the record a served resource comes from."""
    t = fhir_resources.c
    row = (
        await conn.execute(
            select(t.source_id).where(
                t.program_id == program_id, t.resource_type == resource_type, t.resource_id == resource_id
            )
        )
    ).first()
    return None if row is None else str(row.source_id)


async def record_for(conn: AsyncConnection, program_id: str, reference: str, resource_type: str) -> str | None:
    """The domain id behind a literal reference (relative or absolute) to a resource we serve."""
    match = _LITERAL.search(reference)
    if match is None or match["type"] != resource_type:
        return None
    return await source_of(conn, program_id, resource_type, match["id"])


async def _records_with_token(conn: AsyncConnection, program_id: str, resource_type: str, token: str) -> list[str]:
    r, s = fhir_resources.c, fhir_search.c
    rows = await conn.execute(
        select(r.source_id)
        .join(fhir_search, s.resource_pk == r.pk)
        .where(
            s.program_id == program_id,
            s.resource_type == resource_type,
            s.param == "identifier",
            s.token == token[:300],
        )
        .distinct()
    )
    return sorted(str(row.source_id) for row in rows)


async def claimed(conn: AsyncConnection, program_id: str, kind: str, system: str, value: str) -> str | None:
    t = external_identifiers.c
    row = (
        await conn.execute(
            select(t.record_id).where(t.program_id == program_id, t.kind == kind, t.system == system, t.value == value)
        )
    ).first()
    return None if row is None else str(row.record_id)


async def claim(
    conn: AsyncConnection, program_id: str, kind: str, system: str, value: str, record_id: str, now: datetime
) -> None:
    """Record that (system, value) names this record; IdentifierClash when a concurrent one got there first."""
    try:
        await conn.execute(
            insert(external_identifiers).values(
                program_id=program_id, kind=kind, system=system, value=value, record_id=record_id, created_at=now
            )
        )
    except IntegrityError:
        raise IdentifierClash(kind) from None


async def conditional_matches(
    conn: AsyncConnection, program_id: str, resource_type: str, query: str, element: str
) -> list[str]:
    """Ids of the resources an If-None-Exist query matches (at most two: enough to tell 0, 1, many).
    Token and reference parameters (identifier=system|value, patient=Patient/x, ...) and _id."""
    query = query.strip()
    if "?" in query:
        query = query.split("?", 1)[1]
    params = parse_qsl(query, keep_blank_values=True)
    if not params:
        raise bad_request(element, "give search parameters, such as identifier=system|value")
    r, s = fhir_resources.c, fhir_search.c
    statement = select(r.resource_id).where(r.program_id == program_id, r.resource_type == resource_type)
    supported = SEARCH_PARAMS.get(resource_type, {})
    for name, value in params:
        values = [v[:300] for v in value.split(",") if v]
        if not values:
            raise bad_request(element, f"{name[:40]} has no value")
        if name == "_id":
            statement = statement.where(r.resource_id.in_(values))
            continue
        param = supported.get(name)
        if param is None or param.type not in _CONDITIONAL_TYPES:
            usable = ", ".join(["_id", *(n for n, p in supported.items() if p.type in _CONDITIONAL_TYPES)])
            raise bad_request(element, f"{name[:40]!r} cannot be used here; use {usable}")
        statement = statement.where(
            exists().where(s.resource_pk == r.pk, s.param == name, s.token.in_(values)),
        )
    rows = await conn.execute(statement.order_by(r.pk).limit(2))
    return [str(row.resource_id) for row in rows]


# --- participants --------------------------------------------------------------------------------
def patient_fields(resource: Any, ctx: MappingContext, where: Where) -> ParticipantFields:
    if not isinstance(resource, dict):
        raise invalid(where("Patient"), "expected a JSON object")
    try:
        return patient_map.from_fhir(resource, ctx)
    except MappingError as exc:
        raise _from_mapping(exc, where, "Patient") from None


async def match_or_create_participant(
    conn: AsyncConnection, program: Program, fields: ParticipantFields, where: Where, now: datetime | None = None
) -> tuple[str, bool]:
    """(participant id, whether it was created): matched on the hospital's MRN, else made and flagged."""
    participants: RecordRepository[Participant] = RecordRepository(k.PARTICIPANTS)
    mrns = sorted({(i.system, i.value) for i in fields.identifiers if i.type is IdentifierType.MRN})
    found: set[str] = set()
    for system, value in mrns:
        for participant_id in await _records_with_token(conn, program.id, "Patient", f"{system}|{value}"):
            candidate = await participants.find(conn, program.id, participant_id)
            if (
                candidate is not None
                and candidate.mrn(system) == value
                and candidate.birth_date == fields.birth_date
                and (candidate.name.family or "").casefold() == (fields.name.family or "").casefold()
            ):
                found.add(participant_id)
    if len(found) > 1:
        raise refused(where("Patient.identifier"), "the Patient's MRNs belong to different participants")
    if found:
        return found.pop(), False
    at = now or operations.utcnow()
    participant = await operations.create(conn, program.id, PARTICIPANTS, fields, at)
    for system, value in mrns:
        await claim(conn, program.id, PARTICIPANT, system, value, participant.id, at)
    await conn.execute(
        insert(review_flags).values(
            program_id=program.id,
            kind=PARTICIPANT,
            record_id=participant.id,
            reason=NEW_PARTICIPANT_REVIEW,
            created_at=at,
        )
    )
    return participant.id, True


async def receive_patient(
    conn: AsyncConnection,
    program: Program,
    resource: dict[str, Any],
    *,
    if_none_exist: str | None = None,
    where: Where = PLAIN,
    condition_element: str = "If-None-Exist",
) -> Outcome:
    """A hospital's Patient: the participant it matches (200) or a new one (201)."""
    ctx = MappingContext(program)
    fields = patient_fields(resource, ctx, where)
    if if_none_exist is not None:
        matches = await conditional_matches(conn, program.id, "Patient", if_none_exist, condition_element)
        if len(matches) > 1:
            raise PreconditionFailed("If-None-Exist matches more than one Patient; make it more specific")
        if matches:
            return Outcome("Patient", matches[0], created=False)
    participant_id, created = await match_or_create_participant(conn, program, fields, where)
    return Outcome("Patient", ctx.id_for(PARTICIPANT, participant_id), created)


async def _subject(
    conn: AsyncConnection,
    program: Program,
    ctx: MappingContext,
    service_request: dict[str, Any],
    known: Mapping[str, str],
    where: Where,
) -> tuple[str, str]:
    """(the subject's reference as sent, the participant it names), creating the participant from a
    contained Patient when no MRN matches."""
    element = where("ServiceRequest.subject")
    subject = service_request.get("subject")
    if not isinstance(subject, dict):
        raise invalid(element, "required: the person referred (a Patient reference or a contained Patient)")
    reference = subject.get("reference")
    if isinstance(reference, str) and reference:
        if reference in known:
            return reference, known[reference]
        if reference.startswith("#"):
            for index, item in enumerate(service_request.get("contained") or []):
                if isinstance(item, dict) and item.get("id") == reference[1:]:
                    if item.get("resourceType") != "Patient":
                        raise invalid(element, f"{reference} is not a Patient")
                    at = where(f"ServiceRequest.contained[{index}]")
                    fields = patient_fields(item, ctx, where.with_("Patient", at))
                    participant_id, _ = await match_or_create_participant(
                        conn, program, fields, where.with_("Patient", at)
                    )
                    return reference, participant_id
            raise invalid(element, f"{reference} names no contained resource")
        if reference.startswith("urn:"):
            raise invalid(element, "names no entry of this transaction")
        served = await record_for(conn, program.id, reference, "Patient")
        if served is None:
            raise refused(element, "names no Patient this program serves")
        return reference, served
    ident = subject.get("identifier")
    if isinstance(ident, dict) and ident.get("system") and ident.get("value"):
        token = f"{ident['system']}|{ident['value']}"
        matches = await _records_with_token(conn, program.id, "Patient", token)
        if len(matches) == 1:
            return ctx.reference(PARTICIPANT, matches[0])["reference"], matches[0]
        reason = "matches more than one participant" if matches else "names no Patient this program serves"
        raise refused(f"{element}.identifier", reason)
    raise invalid(element, "required: a reference to the Patient, or a contained Patient")


# --- referrals -----------------------------------------------------------------------------------
def _raw_identifiers(service_request: dict[str, Any], own_system: str) -> list[tuple[str, str]]:
    keys = {
        (str(i["system"]), str(i["value"]))
        for i in service_request.get("identifier") or []
        if isinstance(i, dict) and i.get("system") and i.get("value") and i.get("system") != own_system
    }
    return sorted(keys)


async def _existing_referral(
    conn: AsyncConnection,
    program: Program,
    ctx: MappingContext,
    service_request: dict[str, Any],
    if_none_exist: str | None,
    condition_element: str,
) -> str | None:
    if if_none_exist is not None:
        matches = await conditional_matches(conn, program.id, "ServiceRequest", if_none_exist, condition_element)
        if len(matches) > 1:
            raise PreconditionFailed("If-None-Exist matches more than one ServiceRequest; make it more specific")
        if matches:
            return await source_of(conn, program.id, "ServiceRequest", matches[0])
    own_system = ctx.identifier(REFERRAL, "")["system"]
    held = set()
    for system, value in _raw_identifiers(service_request, own_system):
        referral_id = await claimed(conn, program.id, REFERRAL, system, value)
        if referral_id is not None:
            held.add(referral_id)
    if len(held) > 1:
        raise Conflict("the ServiceRequest's identifiers name different referrals of this program")
    return held.pop() if held else None


def _task_reason(task: Mapping[str, Any]) -> str | None:
    reason = task.get("statusReason") or {}
    text = reason.get("text") or next((c.get("display") for c in reason.get("coding") or [] if c.get("display")), None)
    if not text and task.get("status") == "entered-in-error":
        return "entered in error by the clinic"
    return str(text) if text else None


async def _check_task_for(
    conn: AsyncConnection, program_id: str, task: Mapping[str, Any], participant_id: str, known: Mapping[str, str]
) -> bool:
    """Whether Task.for (when given) names the referred participant."""
    reference = (task.get("for") or {}).get("reference")
    if not isinstance(reference, str) or not reference:
        return True
    named = known.get(reference) or await record_for(conn, program_id, reference, "Patient")
    return named == participant_id


async def _check_restates(
    conn: AsyncConnection,
    program: Program,
    task: dict[str, Any],
    referral: Referral,
    known: Mapping[str, str],
    where: Where,
) -> None:
    """A Task sent for a referral we hold creates nothing: it may only restate the clinic's request."""
    try:
        check_valid(task)
        status = referral_map.status_from_task(task)
    except MappingError as exc:
        raise _from_mapping(exc, where, "Task") from None
    if status is not ReferralStatus.REQUESTED:
        raise refused(
            where("Task.status"),
            "a Task sent for a ServiceRequest we hold only restates it; to cancel the referral, update "
            "the Task PeerLink serves (PUT or PATCH /fhir/Task/{id})",
        )
    if not await _check_task_for(conn, program.id, task, referral.participant_id, known):
        raise refused(where("Task.for"), "is not the person the ServiceRequest is for")


async def receive_referral(
    conn: AsyncConnection,
    program: Program,
    service_request: dict[str, Any],
    *,
    task: dict[str, Any] | None = None,
    if_none_exist: str | None = None,
    known: Mapping[str, str] | None = None,
    where: Where = PLAIN,
    condition_element: str = "If-None-Exist",
) -> Outcome:
    """A clinic's ServiceRequest (with its Task, when sent together): the referral it makes (201), or
    the one an earlier delivery made (200)."""
    known = known or {}
    ctx = MappingContext(program)
    try:
        check_valid(service_request)
    except MappingError as exc:
        raise _from_mapping(exc, where, "ServiceRequest") from None
    existing = await _existing_referral(conn, program, ctx, service_request, if_none_exist, condition_element)
    if existing is not None:
        if task is not None:
            referral: Referral = await REFERRALS.repository.get(conn, program.id, existing)
            await _check_restates(conn, program, task, referral, known, where)
        return Outcome("ServiceRequest", ctx.id_for(REFERRAL, existing), created=False)
    reference, participant_id = await _subject(conn, program, ctx, service_request, known, where)
    ctx = MappingContext(program, ctx.overlay, {**known, reference: participant_id})
    if not (service_request.get("subject") or {}).get("reference"):
        service_request = {**service_request, "subject": {"reference": reference}}
    # a create takes no id from the client (and Task.focus may be the entry's urn:uuid)
    body = {key: value for key, value in service_request.items() if key != "id"}
    try:
        inbound = referral_map.from_fhir(body, task, ctx)
    except MappingError as exc:
        raise _from_mapping(exc, where, "ServiceRequest") from None
    if inbound.status is not ReferralStatus.REQUESTED:
        element = "Task.status" if task is not None else "ServiceRequest.status"
        raise refused(where(element), "a new referral must be open (ServiceRequest active, Task requested)")
    if task is not None and not await _check_task_for(conn, program.id, task, participant_id, known):
        raise refused(where("Task.for"), "is not the person the ServiceRequest is for")
    at = operations.utcnow()
    created: Referral = await operations.create(conn, program.id, REFERRALS, inbound.fields, at)
    for system, value in sorted({(i.system, i.value) for i in inbound.fields.identifiers}):
        await claim(conn, program.id, REFERRAL, system, value, created.id, at)
    return Outcome("ServiceRequest", ctx.id_for(REFERRAL, created.id), created=True)


async def _focused_referral(
    conn: AsyncConnection, program: Program, task: dict[str, Any], known: Mapping[str, str], where: Where
) -> Referral:
    element = where("Task.focus")
    focus = (task.get("focus") or {}).get("reference") if isinstance(task.get("focus"), dict) else None
    if not isinstance(focus, str) or not focus:
        raise invalid(element, "required: the ServiceRequest the Task is about")
    referral_id = known.get(focus) or await record_for(conn, program.id, focus, "ServiceRequest")
    if referral_id is None:
        raise refused(element, "names no ServiceRequest this program holds")
    referral: Referral = await REFERRALS.repository.get(conn, program.id, referral_id)
    return referral


async def receive_task(
    conn: AsyncConnection,
    program: Program,
    task: dict[str, Any],
    *,
    known: Mapping[str, str] | None = None,
    where: Where = PLAIN,
) -> Outcome:
    """A clinic's Task for a ServiceRequest we hold: it restates the request and creates nothing (200)."""
    known = known or {}
    try:
        check_valid(task)
    except MappingError as exc:
        raise _from_mapping(exc, where, "Task") from None
    referral = await _focused_referral(conn, program, task, known, where)
    await _check_restates(conn, program, task, referral, known, where)
    return Outcome("Task", MappingContext(program).id_for(referral_map.TASK_KIND, referral.id), created=False)


# --- the clinic's changes to its Task --------------------------------------------------------------
def changed_elements(current: Mapping[str, Any], wanted: Mapping[str, Any]) -> list[str]:
    """Top-level elements whose value differs (PeerLink-set bookkeeping elements aside)."""
    names = (set(current) | set(wanted)) - IGNORED_ON_UPDATE
    return sorted(name for name in names if current.get(name) != wanted.get(name))


async def update_task(
    conn: AsyncConnection,
    program: Program,
    task_id: str,
    task: Any,
    *,
    expected_version: int | None,
    where: Where = PLAIN,
) -> Outcome:
    """The clinic's update of the Task PeerLink serves: a cancel (status cancelled, with the reason),
    or no change at all. ``expected_version`` is the Task's FHIR version (If-Match)."""
    if not isinstance(task, dict) or task.get("resourceType") != "Task":
        raise bad_request(where("Task.resourceType"), "the body must be a Task")
    if task.get("id") != task_id:
        raise bad_request(where("Task.id"), "must be the id of the Task being updated")
    stored = await repository.current(conn, program.id, "Task", task_id)
    referral_id = await source_of(conn, program.id, "Task", task_id)
    if expected_version is not None and expected_version != stored.version_id:
        raise PreconditionFailed(f"the Task is at version {stored.version_id}, not {expected_version}; read it again")
    try:
        check_valid(task)
    except MappingError as exc:
        raise _from_mapping(exc, where, "Task") from None
    changed = changed_elements(orjson.loads(stored.body), task)
    not_allowed = [name for name in changed if name not in CLINIC_MAY_CHANGE]
    if not_allowed:
        elements = [where(f"Task.{name}") for name in not_allowed]
        raise RuleViolation(
            f"{', '.join(elements)}: set by the peer program; the clinic may only cancel its referral "
            "(Task.status cancelled, with Task.statusReason)",
            errors=[{"expression": element} for element in elements],
        )
    outcome = Outcome("Task", task_id, created=False)
    if "status" not in changed:
        if changed:
            raise refused(where("Task.statusReason"), "changes only when the clinic cancels (Task.status cancelled)")
        return outcome
    try:
        status = referral_map.status_from_task(task)
    except MappingError as exc:
        raise refused(where(exc.element), exc.reason) from None
    if status is not ReferralStatus.CANCELLED:
        raise refused(where("Task.status"), f"{task['status']!r}: the clinic may only cancel (status cancelled)")
    reason = _task_reason(task)
    if not reason:
        raise refused(where("Task.statusReason"), "to cancel a referral, give the reason (statusReason.text)")
    try:
        request = TransitionRequest(by=CLINIC, reason=reason)
    except ValidationError:
        raise invalid(where("Task.statusReason"), "the reason is too long") from None
    assert referral_id is not None
    await operations.transition_referral(
        conn, program.id, referral_id, ReferralAction.CANCEL, request, expected_version=None
    )
    return outcome


# --- JSON Patch (RFC 6902) -----------------------------------------------------------------------
_OPS = ("add", "remove", "replace", "move", "copy", "test")
_INDEX = re.compile(r"^(0|[1-9][0-9]*)$")


def _pointer(path: Any, where: str) -> list[str]:
    if not isinstance(path, str) or (path and not path.startswith("/")):
        raise BadRequest(f"{where}: a JSON Pointer such as /status is required")
    return [part.replace("~1", "/").replace("~0", "~") for part in path.split("/")[1:]] if path else []


def _index(container: list[Any], part: str, *, appending: bool, where: str) -> int:
    if appending and part == "-":
        return len(container)
    if not _INDEX.match(part):
        raise PatchFailed(f"{where}: {part[:20]!r} is not an array index")
    index = int(part)
    if index > len(container) or (index == len(container) and not appending):
        raise PatchFailed(f"{where}: index {index} is out of range")
    return index


def _parent(doc: Any, tokens: list[str], where: str) -> Any:
    node = doc
    for token in tokens[:-1]:
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list):
            node = node[_index(node, token, appending=False, where=where)]
        else:
            raise PatchFailed(f"{where}: the path does not exist")
    return node


def _get(doc: Any, tokens: list[str], where: str) -> Any:
    if not tokens:
        return doc
    parent = _parent(doc, tokens, where)
    last = tokens[-1]
    if isinstance(parent, dict) and last in parent:
        return parent[last]
    if isinstance(parent, list):
        return parent[_index(parent, last, appending=False, where=where)]
    raise PatchFailed(f"{where}: the path does not exist")


def _add(doc: Any, tokens: list[str], value: Any, where: str) -> Any:
    if not tokens:
        return value
    parent = _parent(doc, tokens, where)
    if isinstance(parent, dict):
        parent[tokens[-1]] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, tokens[-1], appending=True, where=where), value)
    else:
        raise PatchFailed(f"{where}: the parent is not an object or array")
    return doc


def _remove(doc: Any, tokens: list[str], where: str) -> Any:
    if not tokens:
        raise PatchFailed(f"{where}: the whole document cannot be removed")
    parent = _parent(doc, tokens, where)
    if isinstance(parent, dict) and tokens[-1] in parent:
        del parent[tokens[-1]]
    elif isinstance(parent, list):
        del parent[_index(parent, tokens[-1], appending=False, where=where)]
    else:
        raise PatchFailed(f"{where}: the path does not exist")
    return doc


def _replace(doc: Any, tokens: list[str], value: Any, where: str) -> Any:
    if not tokens:
        return value
    parent = _parent(doc, tokens, where)
    if isinstance(parent, dict) and tokens[-1] in parent:
        parent[tokens[-1]] = value
    elif isinstance(parent, list):
        parent[_index(parent, tokens[-1], appending=False, where=where)] = value
    else:
        raise PatchFailed(f"{where}: the path does not exist")
    return doc


def _same(a: Any, b: Any) -> bool:
    """JSON equality: 1 and true differ, 1 and 1.0 do not."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[key], b[key]) for key in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def apply_patch(document: Any, patch: Any) -> Any:
    """``document`` with the RFC 6902 operations applied (it is not changed itself)."""
    if not isinstance(patch, list):
        raise BadRequest("a JSON Patch is an array of operations")
    doc = copy.deepcopy(document)
    for number, operation in enumerate(patch):
        where = f"patch operation {number}"
        if not isinstance(operation, dict) or operation.get("op") not in _OPS:
            raise BadRequest(f"{where}: op must be one of {', '.join(_OPS)}")
        op = operation["op"]
        tokens = _pointer(operation.get("path"), f"{where} path")
        if op in ("add", "replace", "test") and "value" not in operation:
            raise BadRequest(f"{where}: {op} needs a value")
        if op == "add":
            doc = _add(doc, tokens, copy.deepcopy(operation["value"]), where)
        elif op == "remove":
            doc = _remove(doc, tokens, where)
        elif op == "replace":
            doc = _replace(doc, tokens, copy.deepcopy(operation["value"]), where)
        elif op == "test":
            if not _same(_get(doc, tokens, where), operation["value"]):
                raise PatchFailed(f"{where}: test failed")
        else:
            source = _pointer(operation.get("from"), f"{where} from")
            value = copy.deepcopy(_get(doc, source, where))
            if op == "move":
                if tokens[: len(source)] == source and len(tokens) > len(source):
                    raise PatchFailed(f"{where}: cannot move a value into itself")
                doc = _remove(doc, source, where)
            doc = _add(doc, tokens, value, where)
    return doc


async def patch_task(
    conn: AsyncConnection, program: Program, task_id: str, patch: Any, *, expected_version: int | None
) -> Outcome:
    """A JSON Patch applied to the Task as PeerLink serves it, then taken as an update."""
    stored = await repository.current(conn, program.id, "Task", task_id)
    if expected_version is not None and expected_version != stored.version_id:
        raise PreconditionFailed(f"the Task is at version {stored.version_id}, not {expected_version}; read it again")
    patched = apply_patch(orjson.loads(stored.body), patch)
    return await update_task(conn, program, task_id, patched, expected_version=stored.version_id)


# --- transaction Bundle --------------------------------------------------------------------------
@dataclass
class _Entry:
    index: int
    method: str
    resource: dict[str, Any]
    full_url: str | None
    if_none_exist: str | None
    if_match: int | None
    target_id: str | None = None  # PUT Task/{id}
    outcome: Outcome | None = None

    @property
    def root(self) -> str:
        return f"Bundle.entry[{self.index}].resource"

    @property
    def resource_type(self) -> str:
        return str(self.resource.get("resourceType"))


_ETAG = re.compile(r'^(?:W/)?"(\d{1,9})"$')
_ACCEPTED = {("POST", "Patient"), ("POST", "ServiceRequest"), ("POST", "Task"), ("PUT", "Task")}


def _entries(bundle: dict[str, Any]) -> list[_Entry]:
    entries = bundle.get("entry") or []
    if not isinstance(entries, list):
        raise bad_request("Bundle.entry", "must be an array")
    out: list[_Entry] = []
    urls: set[str] = set()
    for index, entry in enumerate(entries):
        at = f"Bundle.entry[{index}]"
        if not isinstance(entry, dict):
            raise bad_request(at, "must be an object")
        resource, request = entry.get("resource"), entry.get("request")
        if not isinstance(resource, dict):
            raise bad_request(f"{at}.resource", "required in a transaction (POST and PUT entries)")
        if not isinstance(request, dict) or not isinstance(request.get("method"), str):
            raise bad_request(f"{at}.request.method", "required")
        method, url = request["method"].upper(), request.get("url")
        resource_type = resource.get("resourceType")
        if (method, resource_type) not in _ACCEPTED:
            raise bad_request(
                f"{at}.request.method",
                "a transaction here takes POST Patient, ServiceRequest or Task and PUT Task/{id}",
            )
        if not isinstance(url, str) or not url:
            raise bad_request(f"{at}.request.url", "required")
        target_id = None
        if method == "POST" and url.split("?")[0].strip("/") != resource_type:
            raise bad_request(f"{at}.request.url", f"a create is posted to {resource_type}")
        if method == "PUT":
            match = re.fullmatch(r"Task/([A-Za-z0-9\-.]{1,64})", url.strip("/"))
            if match is None:
                raise bad_request(f"{at}.request.url", "an update is put to Task/{id}")
            target_id = match.group(1)
        if_match = None
        if isinstance(request.get("ifMatch"), str):
            found = _ETAG.match(request["ifMatch"].strip())
            if found is None:
                raise bad_request(f"{at}.request.ifMatch", 'must be an ETag this server issued, such as W/"3"')
            if_match = int(found.group(1))
        full_url = entry.get("fullUrl")
        if full_url is not None:
            if not isinstance(full_url, str) or full_url in urls:
                raise bad_request(f"{at}.fullUrl", "must be a distinct string")
            urls.add(full_url)
        if_none_exist = request.get("ifNoneExist")
        if if_none_exist is not None and not isinstance(if_none_exist, str):
            raise bad_request(f"{at}.request.ifNoneExist", "must be a search query string")
        out.append(_Entry(index, method, resource, full_url, if_none_exist, if_match, target_id))
    return out


def _focus(entry: _Entry) -> str | None:
    focus = entry.resource.get("focus")
    reference = focus.get("reference") if isinstance(focus, dict) else None
    return reference if isinstance(reference, str) else None


async def transaction(
    conn: AsyncConnection,
    program: Program,
    bundle: Any,
    base: str,
    *,
    permit: Callable[[str, str], None] | None = None,
    organization: str | None = None,
) -> bytes:
    """A transaction Bundle, all or nothing (the caller's database transaction): the
    transaction-response Bundle with every entry's outcome and current resource.

    ``permit(method, resource_type)`` is asked for every entry before anything is written; with an
    ``organization`` (the sender's data boundary) every written resource must lie inside it."""
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise BadRequest("the body must be a Bundle")
    if bundle.get("type") == "batch":
        raise bad_request("Bundle.type", "batch is not supported; send a transaction")
    if bundle.get("type") != "transaction":
        raise bad_request("Bundle.type", "must be transaction")
    entries = _entries(bundle)
    if permit is not None:
        for entry in entries:
            permit(entry.method, entry.resource_type)
    ctx = MappingContext(program)
    known: dict[str, str] = {}  # fullUrl -> domain id
    by_url = {e.full_url: e for e in entries if e.full_url}

    def remember(entry: _Entry, domain_id: str) -> None:
        if entry.full_url:
            known[entry.full_url] = domain_id

    for entry in (e for e in entries if e.resource_type == "Patient"):
        where = Where({"Patient": entry.root})
        entry.outcome = await receive_patient(
            conn,
            program,
            entry.resource,
            if_none_exist=entry.if_none_exist,
            where=where,
            condition_element=f"Bundle.entry[{entry.index}].request.ifNoneExist",
        )
        source = await source_of(conn, program.id, "Patient", entry.outcome.resource_id)
        assert source is not None
        remember(entry, source)

    paired: dict[int, _Entry] = {}  # ServiceRequest entry index -> its Task entry
    for entry in entries:
        if entry.method == "POST" and entry.resource_type == "Task":
            focus = by_url.get(_focus(entry) or "")
            if focus is not None and focus.resource_type == "ServiceRequest" and focus.method == "POST":
                if focus.index in paired:
                    raise refused(f"{entry.root}.focus", "a second Task for the same ServiceRequest")
                paired[focus.index] = entry

    for entry in (e for e in entries if e.resource_type == "ServiceRequest"):
        task = paired.get(entry.index)
        where = Where({"ServiceRequest": entry.root, **({"Task": task.root} if task else {})})
        entry.outcome = await receive_referral(
            conn,
            program,
            entry.resource,
            task=task.resource if task else None,
            if_none_exist=entry.if_none_exist,
            known=known,
            where=where,
            condition_element=f"Bundle.entry[{entry.index}].request.ifNoneExist",
        )
        referral_id = await source_of(conn, program.id, "ServiceRequest", entry.outcome.resource_id)
        assert referral_id is not None
        remember(entry, referral_id)
        if task is not None:
            task_id = ctx.id_for(referral_map.TASK_KIND, referral_id)
            task.outcome = Outcome("Task", task_id, entry.outcome.created)
            remember(task, referral_id)

    for entry in (e for e in entries if e.resource_type == "Task" and e.outcome is None):
        where = Where({"Task": entry.root})
        if entry.method == "POST":
            entry.outcome = await receive_task(conn, program, entry.resource, known=known, where=where)
        else:
            assert entry.target_id is not None
            entry.outcome = await update_task(
                conn, program, entry.target_id, entry.resource, expected_version=entry.if_match, where=where
            )

    return await _response(conn, program.id, entries, base, organization)


async def _response(
    conn: AsyncConnection, program_id: str, entries: Iterable[_Entry], base: str, organization: str | None
) -> bytes:
    parts: list[tuple[str, bytes, dict[str, Any]]] = []
    for entry in entries:
        assert entry.outcome is not None
        done = entry.outcome
        stored = await written(conn, program_id, done, organization)
        path = f"{done.resource_type}/{done.resource_id}"
        response = {
            "status": "201 Created" if done.created else "200 OK",
            "location": f"{path}/_history/{stored.version_id}",
            "etag": f'W/"{stored.version_id}"',
            "lastModified": instant(stored.last_updated),
        }
        parts.append((f"{base}/{path}", stored.body, {"response": response}))
    return splice("transaction-response", parts)
