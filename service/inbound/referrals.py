"""A clinic's referral: its ServiceRequest (with its Task, when sent together) becomes a referral.

The clinic's own identifiers of its order (ServiceRequest.identifier) are kept on the referral and
claimed in ``external_identifiers`` in the same transaction. A resend of an order we hold returns the
referral it made (200), with or without If-None-Exist; two concurrent deliveries collide on the
unique key and the loser runs again, finding the winner's records. A new referral must be open:
ServiceRequest.status active/draft/on-hold, Task.status requested/draft. A Task sent for a referral
we hold creates nothing: it may only restate the clinic's request.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from mappings import referral as referral_map
from mappings.context import MappingContext, MappingError, check_valid
from service.domain import Program, Referral, ReferralFields, ReferralStatus
from service.domain.errors import Conflict, PreconditionFailed
from service.records import operations
from service.records.types import REFERRALS

from .errors import PLAIN, Where, from_mapping, refused
from .lookups import claim, claimed, conditional_matches, record_for, source_of
from .outcomes import Outcome
from .patients import referred_participant

REFERRAL = "referral"
TASK_IDENTIFIER = "referral-task"
SENT_ID = "referral-sent-id"  # external_identifiers kind: (sender, the clinic's ServiceRequest.id)
SENDER_PROGRAM = "urn:peerlink:program-client"  # the sender of a client with no registered organisation


def organization_of(registered: str | None) -> dict[str, Any] | None:
    """A client's registered organisation (``system|value``) as referring-organisation fields."""
    if registered is None:
        return None
    system, _, value = registered.partition("|")
    if system == referral_map.NPI_SYSTEM:
        return {"name": value, "npi": value}
    return {"name": value, "identifier": {"type": "other", "system": system, "value": value}}


def with_sender_identifier(fields: ReferralFields, registered: str | None) -> ReferralFields:
    """A referring organisation sent with neither NPI nor identifier takes the sending client's
    registered one (the client is authenticated as that organisation)."""
    org = fields.referring_organization
    if registered is None or org.npi or org.identifier:
        return fields
    sender = organization_of(registered) or {}
    changes = {k: v for k, v in sender.items() if k != "name"}
    return ReferralFields.model_validate(
        {**fields.model_dump(), "referring_organization": {**org.model_dump(), **changes}}
    )


def clinic_identifiers(service_request: Mapping[str, Any], own_system: str) -> list[tuple[str, str]]:
    """The (system, value) pairs a clinic gave its order, ours aside; once each, sorted."""
    identifiers = service_request.get("identifier")
    keys = {
        (str(i["system"]), str(i["value"]))
        for i in (identifiers if isinstance(identifiers, list) else [])
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
    for system, value in clinic_identifiers(service_request, own_system):
        referral_id = await claimed(conn, program.id, REFERRAL, system, value)
        if referral_id is not None:
            held.add(referral_id)
    if len(held) > 1:
        raise Conflict("the ServiceRequest's identifiers name different referrals of this program")
    return held.pop() if held else None


async def task_names_participant(
    conn: AsyncConnection, program_id: str, task: Mapping[str, Any], participant_id: str, known: Mapping[str, str]
) -> bool:
    """Whether Task.for (when given) names the referred participant."""
    reference = (task.get("for") or {}).get("reference")
    if not isinstance(reference, str) or not reference:
        return True
    named = known.get(reference) or await record_for(conn, program_id, reference, "Patient")
    return named == participant_id


def check_valid_resource(resource: dict[str, Any], resource_type: str, where: Where) -> None:
    """The resource through its fhir.resources model; the first problem names the element as sent."""
    try:
        check_valid(resource)
    except MappingError as exc:
        raise from_mapping(exc, where, resource_type) from None


async def check_restates(
    conn: AsyncConnection,
    program: Program,
    task: dict[str, Any],
    referral: Referral,
    known: Mapping[str, str],
    where: Where,
) -> None:
    """A Task sent for a referral we hold creates nothing: it may only restate the clinic's request.
    The Task has been validated (``check_task``)."""
    try:
        status = referral_map.status_from_task(task)
    except MappingError as exc:
        raise from_mapping(exc, where, "Task") from None
    if status is not ReferralStatus.REQUESTED:
        raise refused(
            where("Task.status"),
            "a Task sent for a ServiceRequest we hold only restates it; to cancel the referral, update "
            "the Task PeerLink serves (PUT or PATCH /fhir/Task/{id})",
        )
    if not await task_names_participant(conn, program.id, task, referral.participant_id, known):
        raise refused(where("Task.for"), "is not the person the ServiceRequest is for")


async def keep_task_identifiers(
    conn: AsyncConnection, program: Program, ctx: MappingContext, task: Mapping[str, Any], referral: Referral
) -> None:
    """The clinic's identifiers of a Task sent for a referral we hold are kept beside those it has
    (a resend adds nothing); each is claimed for the referral."""
    held = {(i.system, i.value) for i in referral.task_identifiers}
    new = [
        i
        for i in referral_map.clinic_identifiers(task, ctx, referral_map.TASK_KIND)
        if (i["system"], i["value"]) not in held
    ]
    if not new:
        return
    at = operations.utcnow()
    for ident in new:
        await claim_task_identifier(conn, program.id, ident["system"], ident["value"], referral.id, at)
    kept = [i.model_dump(mode="json") for i in referral.task_identifiers] + new
    await operations.update(
        conn, program.id, REFERRALS, referral.id, {"task_identifiers": kept}, expected_version=None, now=at
    )


async def claim_task_identifier(
    conn: AsyncConnection, program_id: str, system: str, value: str, referral_id: str, at: datetime
) -> None:
    """Claim a clinic's Task identifier for a referral; one naming another referral is a conflict."""
    owner = await claimed(conn, program_id, TASK_IDENTIFIER, system, value)
    if owner is not None and owner != referral_id:
        raise Conflict("the Task's identifier names another referral of this program")
    if owner is None:
        await claim(conn, program_id, TASK_IDENTIFIER, system, value, referral_id, at)


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
    supporting: referral_map.Supporting = referral_map.NOTHING,
    organization: str | None = None,
) -> Outcome:
    """A clinic's ServiceRequest (with its Task, when sent together): the referral it makes (201), or
    the one an earlier delivery made (200). The ServiceRequest is validated once: by its mapping when
    it makes a referral, here when it restates one we hold.

    ``supporting``: the resources sent beside it (a transaction's entries) by the references that
    name them; ``organization``: the sending client's registered organisation (``system|value``),
    the referring organisation when none is given, and its identifier when the one given has none."""
    known = known or {}
    ctx = MappingContext(program)
    existing = await _existing_referral(conn, program, ctx, service_request, if_none_exist, condition_element)
    sent_id = service_request.get("id") if isinstance(service_request.get("id"), str) else None
    sender = organization or SENDER_PROGRAM
    if existing is None and sent_id:
        existing = await claimed(conn, program.id, SENT_ID, sender, sent_id)
    if existing is not None:
        check_valid_resource(service_request, "ServiceRequest", where)
        if task is not None:
            referral: Referral = await REFERRALS.repository.get(conn, program.id, existing)
            check_valid_resource(task, "Task", where)
            await check_restates(conn, program, task, referral, known, where)
            await keep_task_identifiers(conn, program, ctx, task, referral)
        return Outcome("ServiceRequest", ctx.id_for(REFERRAL, existing), created=False)
    reference, participant_id = await referred_participant(conn, program, ctx, service_request, known, where)
    ctx = MappingContext(program, ctx.overlay, {**known, reference: participant_id})
    if not (service_request.get("subject") or {}).get("reference"):
        service_request = {**service_request, "subject": {"reference": reference}}
    # a create takes no id from the client (and Task.focus may be the entry's urn:uuid)
    body = {key: value for key, value in service_request.items() if key != "id"}
    try:
        inbound = referral_map.from_fhir(
            body, task, ctx, supporting=supporting, default_organization=organization_of(organization)
        )
    except MappingError as exc:
        raise from_mapping(exc, where, "ServiceRequest") from None
    fields = with_sender_identifier(inbound.fields, organization)
    if inbound.status is not ReferralStatus.REQUESTED:
        element = "Task.status" if task is not None else "ServiceRequest.status"
        raise refused(where(element), "a new referral must be open (ServiceRequest active, Task requested)")
    if task is not None and not await task_names_participant(conn, program.id, task, participant_id, known):
        raise refused(where("Task.for"), "is not the person the ServiceRequest is for")
    at = operations.utcnow()
    created: Referral = await operations.create(conn, program.id, REFERRALS, fields, at)
    for system, value in sorted({(i.system, i.value) for i in fields.identifiers}):
        await claim(conn, program.id, REFERRAL, system, value, created.id, at)
    if sent_id:  # the clinic's own id of its ServiceRequest: a resend finds this referral
        await claim(conn, program.id, SENT_ID, sender, sent_id, created.id, at)
    for ident in created.task_identifiers:
        await claim_task_identifier(conn, program.id, ident.system, ident.value, created.id, at)
    return Outcome("ServiceRequest", ctx.id_for(REFERRAL, created.id), created=True)
