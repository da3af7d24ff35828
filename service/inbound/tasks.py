"""A clinic's Task: sent on its own it restates a referral we hold; on the Task PeerLink serves, the
clinic (the requester) may only cancel.

A cancel is status cancelled (or entered-in-error) with a statusReason, through PUT or JSON Patch.
Every other element is the peer program's to set; a change to one is refused naming it.
businessStatus, lastModified, meta and text in an update are ignored (PeerLink sets them).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncConnection

from mappings import referral as referral_map
from mappings.context import MappingContext, MappingError
from service.domain import Program, Referral, ReferralAction, ReferralStatus, TransitionRequest
from service.domain.errors import PreconditionFailed, RuleViolation
from service.fhir import repository
from service.records import operations
from service.records.types import REFERRALS

from .errors import PLAIN, Where, bad_request, invalid, refused
from .lookups import record_for, source_of
from .outcomes import Outcome
from .patch import apply_patch
from .referrals import check_restates, check_valid_resource, keep_task_identifiers

CLINIC = "clinic"  # who takes the steps a clinic asks for, in the referral's transitions
CLINIC_MAY_CHANGE = ("status", "statusReason")
IGNORED_ON_UPDATE = frozenset({"id", "meta", "text", "businessStatus", "lastModified"})


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
    check_valid_resource(task, "Task", where)
    referral = await _focused_referral(conn, program, task, known, where)
    await check_restates(conn, program, task, referral, known, where)
    ctx = MappingContext(program)
    await keep_task_identifiers(conn, program, ctx, task, referral)
    return Outcome("Task", ctx.id_for(referral_map.TASK_KIND, referral.id), created=False)


def changed_elements(current: Mapping[str, Any], wanted: Mapping[str, Any]) -> list[str]:
    """Top-level elements whose value differs (PeerLink-set bookkeeping elements aside)."""
    names = (set(current) | set(wanted)) - IGNORED_ON_UPDATE
    return sorted(name for name in names if current.get(name) != wanted.get(name))


def cancel_reason(task: Mapping[str, Any]) -> str | None:
    """The reason a clinic gives for cancelling: statusReason's text or first display."""
    reason = task.get("statusReason") or {}
    text = reason.get("text") or next((c.get("display") for c in reason.get("coding") or [] if c.get("display")), None)
    if not text and task.get("status") == "entered-in-error":
        return "entered in error by the clinic"
    return str(text) if text else None


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
    check_valid_resource(task, "Task", where)
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
    reason = cancel_reason(task)
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


async def patch_task(
    conn: AsyncConnection, program: Program, task_id: str, patch: Any, *, expected_version: int | None
) -> Outcome:
    """A JSON Patch applied to the Task as PeerLink serves it, then taken as an update."""
    stored = await repository.current(conn, program.id, "Task", task_id)
    if expected_version is not None and expected_version != stored.version_id:
        raise PreconditionFailed(f"the Task is at version {stored.version_id}, not {expected_version}; read it again")
    patched = apply_patch(orjson.loads(stored.body), patch)
    return await update_task(conn, program, task_id, patched, expected_version=stored.version_id)
