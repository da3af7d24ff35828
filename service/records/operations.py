"""Create, update and act on records: every rule checked, every change in the caller's transaction."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ValidationError
from sqlalchemy.ext.asyncio import AsyncConnection

from service.domain import note as note_rules
from service.domain import referral as referral_rules
from service.domain.consent import Consent, revoke
from service.domain.errors import PreconditionFailed, RuleViolation
from service.domain.note import AmendmentFields, Note
from service.domain.referral import AssignmentMatch, Referral, ReferralAction, TransitionRequest
from service.domain.specialist import PeerSpecialist
from service.store import RecordRepository
from service.store import kinds as k

from .changes import record_changed
from .types import NOTES, RecordType


def utcnow() -> datetime:
    return datetime.now(UTC)


def validation_errors(exc: ValidationError) -> list[dict[str, Any]]:
    """Pydantic errors without the offending input (it may be PHI)."""
    return [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]


async def _check_references(conn: AsyncConnection, program_id: str, rtype: RecordType[Any], content: BaseModel) -> None:
    for name, stored in rtype.references.items():
        value = getattr(content, name)
        if value is not None and await RecordRepository(stored).find(conn, program_id, value) is None:
            raise RuleViolation(f"{name} names no {stored.label} in this program")


async def create(
    conn: AsyncConnection,
    program_id: str,
    rtype: RecordType[Any],
    content: BaseModel,
    now: datetime | None = None,
) -> Any:
    await _check_references(conn, program_id, rtype, content)
    await rtype.check(conn, program_id, content, None)
    at = now or utcnow()
    record = await rtype.repository.insert(conn, program_id, content, at)
    await record_changed(conn, program_id, rtype.stored.name, record, at)
    return record


async def update(
    conn: AsyncConnection,
    program_id: str,
    rtype: RecordType[Any],
    record_id: str,
    changes: Mapping[str, Any],
    *,
    expected_version: int | None,
    now: datetime | None = None,
) -> Any:
    """Apply a partial change (already checked against ``rtype.patch``) and re-validate the whole."""
    repository = rtype.repository
    current = await repository.get(conn, program_id, record_id)
    current_fields = current.model_dump(mode="json", include=set(rtype.fields.model_fields))
    try:
        merged = rtype.fields.model_validate({**current_fields, **changes})
    except ValidationError as exc:
        raise RuleViolation("the change breaks a rule of the record", errors=validation_errors(exc)) from None
    await _check_references(conn, program_id, rtype, merged)
    await rtype.check(conn, program_id, merged, current)
    state = current.model_dump(mode="json", exclude=set(rtype.fields.model_fields))
    at = now or utcnow()
    record = await repository.update(
        conn, current, {**state, **merged.model_dump(mode="json")}, at, expected_version=expected_version
    )
    await record_changed(conn, program_id, rtype.stored.name, record, at)
    return record


async def transition_referral(
    conn: AsyncConnection,
    program_id: str,
    referral_id: str,
    action: ReferralAction,
    request: TransitionRequest,
    *,
    expected_version: int | None,
    now: datetime | None = None,
    match: AssignmentMatch | None = None,
) -> Referral:
    at = now or utcnow()
    repository: RecordRepository[Referral] = RecordRepository(k.REFERRALS)
    current = await repository.get(conn, program_id, referral_id)
    if request.specialist_id is not None:
        specialist: PeerSpecialist | None = await RecordRepository(k.SPECIALISTS).find(
            conn, program_id, request.specialist_id
        )
        if specialist is None:
            raise RuleViolation("specialist_id names no peer specialist in this program")
        if not specialist.active:
            raise RuleViolation("the peer specialist is inactive and cannot take referrals")
    state = referral_rules.apply(current, action, request, at)
    content = {**current.model_dump(mode="json"), **state.model_dump(mode="json")}
    if match is not None:
        content["match"] = match.model_dump(mode="json")
    referral = await repository.update(conn, current, content, at, expected_version=expected_version)
    await record_changed(conn, program_id, "referral", referral, at)
    return referral


async def _set_note_state(
    conn: AsyncConnection, note: Note, state: BaseModel, at: datetime, expected_version: int | None
) -> Note:
    content = {**note.model_dump(mode="json"), **state.model_dump(mode="json")}
    changed: Note = await NOTES.repository.update(conn, note, content, at, expected_version=expected_version)
    await record_changed(conn, note.program_id, "note", changed, at)
    return changed


async def sign_note(
    conn: AsyncConnection,
    program_id: str,
    note_id: str,
    *,
    expected_version: int | None,
    now: datetime | None = None,
) -> Note:
    at = now or utcnow()
    note: Note = await NOTES.repository.get(conn, program_id, note_id)
    return await _set_note_state(conn, note, note_rules.sign(note, at), at, expected_version)


async def retract_note(
    conn: AsyncConnection,
    program_id: str,
    note_id: str,
    *,
    expected_version: int | None,
    now: datetime | None = None,
) -> Note:
    at = now or utcnow()
    note: Note = await NOTES.repository.get(conn, program_id, note_id)
    return await _set_note_state(conn, note, note_rules.retract(note), at, expected_version)


async def amend_note(
    conn: AsyncConnection,
    program_id: str,
    note_id: str,
    amendment: AmendmentFields,
    *,
    expected_version: int | None,
    now: datetime | None = None,
) -> Note:
    """A signed note is never edited: the correction is a new note that points at it.
    ``expected_version`` is the version of the note being amended, as its author read it."""
    at = now or utcnow()
    original: Note = await NOTES.repository.get(conn, program_id, note_id)
    if expected_version is not None and expected_version != original.version:
        raise PreconditionFailed(f"the note is at version {original.version}, not {expected_version}; read it again")
    state = note_rules.amendment_state(original, at)
    if await RecordRepository(k.SPECIALISTS).find(conn, program_id, amendment.author_id) is None:
        raise RuleViolation("author_id names no peer specialist in this program")
    content = {
        "encounter_id": original.encounter_id,
        "sud_counseling_note": original.sud_counseling_note,  # an amendment stays under its original's consent
        **amendment.model_dump(mode="json"),
        **state.model_dump(mode="json"),
    }
    correction: Note = await NOTES.repository.insert(conn, program_id, content, at)
    await record_changed(conn, program_id, "note", correction, at)
    return correction


async def revoke_consent(
    conn: AsyncConnection,
    program_id: str,
    consent_id: str,
    *,
    expected_version: int | None,
    now: datetime | None = None,
) -> Consent:
    at = now or utcnow()
    repository: RecordRepository[Consent] = RecordRepository(k.CONSENTS)
    consent = await repository.get(conn, program_id, consent_id)
    content = {**consent.model_dump(mode="json"), **revoke(consent, at).model_dump(mode="json")}
    revoked = await repository.update(conn, consent, content, at, expected_version=expected_version)
    await record_changed(conn, program_id, "consent", revoked, at)
    return revoked
