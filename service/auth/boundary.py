"""Data boundaries: what an outside organisation's client may see of the program's FHIR resources.

A consent opens the participant's resources of the consented categories to the recipient
organisation for the consent's period (until revoked) — the program's own records, not the clinical
context another clinic sent with a referral; a referral opens to the clinic that sent it
its own ServiceRequest and Task, the clinical context it sent with them (``clinical_context``) and the
referred participant's Patient. Both are kept as rows of
``access_grants``, rewritten in the transaction that changes the consent or referral, and every
read, search, include and history query of an organisation's client carries :func:`visible`.
The program's own clients (no organisation) see everything of the program.

This module is the one consent/boundary decision of every channel: reads, searches, ``_include`` /
``_revinclude`` and history (``service.fhir.repository`` and ``service.fhir.search``), bulk export
(``service.bulk.export``) carry :func:`visible`; EHR pushes ask :func:`granted` when queued
(``service.records.outbox_rows.may_send``) and again when sent (``granted_many`` in
``service.exchange.outbox.sendable``, then ``may_send`` for notes in ``service.exchange.delivery``).
All of them read the same ``access_grants`` rows through :func:`_grant_rows`, and all of them know a
substance-use-disorder counseling note by :data:`SUD_COUNSELING_NOTE` (its own grant, never ``notes``'s).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, case, delete, exists, insert, not_, or_, select, true
from sqlalchemy.ext.asyncio import AsyncConnection

from mappings.clinical_context import KEPT_TYPES, PATIENT_ELEMENTS
from mappings.ids import fhir_id
from service.domain import Program
from service.domain.common import Organization
from service.domain.consent import Consent, DataCategory
from service.domain.referral import Referral
from service.store.tables import access_grants, fhir_resources, notes

NPI_SYSTEM = "http://hl7.org/fhir/sid/us-npi"
PUBLIC_TYPES = frozenset({"Practitioner", "PractitionerRole", "Organization", "Questionnaire"})
"""Resources about the program's staff and organisations, and its outcome instruments (the questions,
never anyone's answers): no participant's data, visible to any client whose scopes allow the type."""

CATEGORY_TYPES: dict[DataCategory, tuple[str, ...]] = {
    DataCategory.DEMOGRAPHICS: ("Patient",),
    DataCategory.ENCOUNTERS: ("Encounter",),
    DataCategory.NOTES: ("DocumentReference",),
    DataCategory.CARE_TEAM: ("CareTeam",),
    DataCategory.REFERRALS: ("ServiceRequest", "Task"),
    DataCategory.GOALS: ("Goal",),
    DataCategory.ASSESSMENTS: ("QuestionnaireResponse", "Observation"),
    DataCategory.SUD_COUNSELING_NOTES: ("DocumentReference#sud-counseling-note",),
}
SUD_COUNSELING_NOTE = "DocumentReference#sud-counseling-note"
"""The grant's ``resource_type`` that opens a participant's SUD counseling notes (DocumentReferences of
notes flagged ``sud_counseling_note``): only the category ``sud-counseling-notes`` writes it, and such a
note is never opened by the plain ``DocumentReference`` grant of ``notes``."""
CLINICAL_CONTEXT = "clinical-context"
"""The ``source_kind`` of the resources a clinic sent with a referral (``service.fhir.render``)."""
_NPI = re.compile(r"^\d{10}$")
_PATIENT_REF = re.compile(r"^Patient/([A-Za-z0-9\-.]{1,64})$")


def normalize_organization(text: str) -> str:
    """A client's organisation as registered: ``system|value`` of its identifier, or a bare NPI."""
    text = text.strip()
    if _NPI.match(text):
        return f"{NPI_SYSTEM}|{text}"
    system, bar, value = text.partition("|")
    if not bar or not system or not value:
        raise ValueError("the organisation is its identifier as system|value, or a 10-digit NPI")
    return text


def organization_keys(organization: Organization) -> list[str]:
    keys = []
    if organization.npi:
        keys.append(f"{NPI_SYSTEM}|{organization.npi}")
    if organization.identifier:
        keys.append(f"{organization.identifier.system}|{organization.identifier.value}")
    return keys


def compartment_patient(resource: dict[str, Any]) -> str | None:
    """The id of the Patient a resource is about (its own id for a Patient)."""
    if resource.get("resourceType") == "Patient":
        found: str | None = resource.get("id")
        return found
    for element in PATIENT_ELEMENTS:
        reference = (resource.get(element) or {}).get("reference")
        match = _PATIENT_REF.match(reference or "")
        if match:
            return match.group(1)
    return None


def patient_id(program: Program, participant_id: str) -> str:
    """The id of a participant's Patient resource."""
    return fhir_id(program.identifier_system, "participant", participant_id)


async def sync(conn: AsyncConnection, program: Program, kind: str, record: Any) -> None:
    """Rewrite the grants a consent or referral gives (called with every change of either)."""
    if kind not in ("consent", "referral"):
        return
    g = access_grants.c
    await conn.execute(delete(access_grants).where(g.origin_kind == kind, g.origin_id == record.id))
    rows: list[dict[str, Any]] = []
    base = {"program_id": program.id, "patient_id": patient_id(program, record.participant_id), "origin_kind": kind}
    if isinstance(record, Consent) and record.revoked_at is None:
        types = [("Consent", record.id)] + [(t, None) for c in record.categories for t in CATEGORY_TYPES[c]]
        for organization in organization_keys(record.recipient):
            rows += [
                {
                    **base,
                    "organization": organization,
                    "resource_type": resource_type,
                    "source_id": source_id,
                    "starts": record.period.start,
                    "ends": record.period.end,
                    "origin_id": record.id,
                }
                for resource_type, source_id in types
            ]
    elif isinstance(record, Referral):
        # the referral's own resources and the clinical context the clinic sent with it
        types = [("Patient", None), ("ServiceRequest", record.id), ("Task", record.id)]
        types += [(t, record.id) for t in KEPT_TYPES if t not in PUBLIC_TYPES]
        for organization in organization_keys(record.referring_organization):
            rows += [
                {
                    **base,
                    "organization": organization,
                    "resource_type": resource_type,
                    "source_id": source_id,
                    "starts": None,
                    "ends": None,
                    "origin_id": record.id,
                }
                for resource_type, source_id in types
            ]
    if rows:
        await conn.execute(insert(access_grants), rows)


def grant_type(resource_type: str, sud_counseling_note: bool = False) -> str:
    """The grant ``resource_type`` a resource needs: its own type, or :data:`SUD_COUNSELING_NOTE`."""
    return SUD_COUNSELING_NOTE if sud_counseling_note and resource_type == "DocumentReference" else resource_type


def _grant_rows(program_id: Any, organization: Any, patient: Any, today: Any) -> list[ColumnElement[bool]]:
    """The conditions every channel puts on ``access_grants``: the program, the recipient, the
    participant, and a grant in force today (a revoked consent has no rows left). ``organization`` and
    ``today``: values, or bind parameters standing for them."""
    g = access_grants.c
    rows = [
        g.program_id == program_id,
        g.organization == organization,
        or_(g.starts.is_(None), g.starts <= today),
        or_(g.ends.is_(None), g.ends >= today),
    ]
    return rows if patient is None else [*rows, g.patient_id == patient]


def grants_in_force(program_id: Any, organization: str, today: date | None = None) -> list[ColumnElement[bool]]:
    """The ``access_grants`` rows of ``organization`` in force today (a partner's Group members)."""
    return _grant_rows(program_id, organization, None, today or datetime.now(UTC).date())


def _sud_counseling_note() -> ColumnElement[bool]:
    """On a ``fhir_resources`` row: it is the DocumentReference of a note flagged as SUD counseling note."""
    r, n = fhir_resources.c, notes.c
    flagged = exists().where(
        n.program_id == r.program_id, n.id == r.source_id, n.data["sud_counseling_note"].as_boolean() == true()
    )
    return and_(r.resource_type == "DocumentReference", r.source_kind == "note", flagged)


def visible(organization: Any, today: Any = None, resource_type: str | None = None) -> ColumnElement[bool] | None:
    """The condition on a ``fhir_resources`` row for what ``organization`` may see (None: no limit).
    ``organization`` and ``today`` (default: today): values, or bind parameters standing for them (a
    statement kept for every searcher of its shape, service.fhir.search.execute). ``resource_type``: the
    row's type when the statement asks for one type only; the condition is then the same decision with
    the branches that type cannot take left out (a search of Encounters asks one grant, not whether an
    Encounter is a public type or a SUD counseling note: PostgreSQL plans every search anew, and each
    branch left in was planned each time)."""
    if organization is None:
        return None
    if today is None:
        today = datetime.now(UTC).date()
    r, g = fhir_resources.c, access_grants.c
    # a consent (no source) opens the program's own records, never the clinical context another
    # clinic sent with a referral (its Observations and QuestionnaireResponses are not assessments)
    source = or_(and_(g.source_id.is_(None), r.source_kind != CLINICAL_CONTEXT), g.source_id == r.source_id)
    rows = _grant_rows(r.program_id, organization, r.patient_id, today)
    granted = exists().where(*rows, g.resource_type == r.resource_type, source)
    sud_granted = exists().where(*rows, g.resource_type == SUD_COUNSELING_NOTE, g.origin_kind == "consent")
    if resource_type is not None:
        return _visible_of_type(resource_type, granted, sud_granted)
    sud_note = _sud_counseling_note()
    # equalities, not an IN list: a kept statement's SQL is then whole when compiled (service.store.kept)
    public = and_(r.patient_id.is_(None), or_(*(r.resource_type == t for t in sorted(PUBLIC_TYPES))))
    return or_(public, and_(not_(sud_note), granted), and_(sud_note, sud_granted))


def _visible_of_type(
    resource_type: str, granted: ColumnElement[bool], sud_granted: ColumnElement[bool]
) -> ColumnElement[bool]:
    """:func:`visible`'s decision for rows of one type: a public type's rows about nobody, a
    DocumentReference by the grant its note needs, any other type by its grant."""
    r = fhir_resources.c
    if resource_type == "DocumentReference":
        # the same as visible()'s two note branches: whether it is a SUD counseling note is never NULL
        # (resource_type and source_kind are NOT NULL), so the CASE takes exactly one of them
        opened: ColumnElement[bool] = case((_sud_counseling_note(), sud_granted), else_=granted)
    else:
        opened = granted
    return or_(r.patient_id.is_(None), opened) if resource_type in PUBLIC_TYPES else opened


def version_visible(organization: str | None, versions: Any) -> ColumnElement[bool] | None:
    """For rows of ``fhir_versions``: the resource they are versions of is visible."""
    condition = visible(organization)
    if condition is None:
        return None
    r, v = fhir_resources.c, versions.c
    return exists().where(
        r.program_id == v.program_id,
        r.resource_type == v.resource_type,
        r.resource_id == v.resource_id,
        condition,
    )


async def granted(
    conn: AsyncConnection,
    program: Program,
    organization: str,
    participant_id: str,
    resource_type: str,
    sud_counseling_note: bool = False,
) -> bool:
    """Whether a consent opens the participant's resources of ``resource_type`` to ``organization``
    today (what the gateway may push to that organisation's EHR); a SUD counseling note needs the
    grant of ``sud-counseling-notes``, as in :func:`visible`."""
    g = access_grants.c
    today = datetime.now(UTC).date()
    query = select(g.pk).where(
        *_grant_rows(program.id, organization, patient_id(program, participant_id), today),
        g.resource_type == grant_type(resource_type, sud_counseling_note),
        g.origin_kind == "consent",
    )
    return (await conn.execute(query.limit(1))).first() is not None


async def sud_counseling_notes(conn: AsyncConnection, program_id: str, note_ids: list[str]) -> set[str]:
    """Which of these notes are SUD counseling notes (for the push decision, as :func:`visible` reads them)."""
    if not note_ids:
        return set()
    n = notes.c
    rows = await conn.execute(
        select(n.id).where(
            n.program_id == program_id, n.id.in_(note_ids), n.data["sud_counseling_note"].as_boolean() == true()
        )
    )
    return {row.id for row in rows}


async def granted_many(
    conn: AsyncConnection, program: Program, organization: str, patient_ids: list[str], resource_types: list[str]
) -> set[tuple[str, str]]:
    """``granted`` for many patients at once: the (patient id, resource type) pairs consents open today."""
    g = access_grants.c
    today = datetime.now(UTC).date()
    rows = await conn.execute(
        select(g.patient_id, g.resource_type).where(
            *_grant_rows(program.id, organization, None, today),
            g.patient_id.in_(patient_ids),
            g.resource_type.in_(resource_types),
            g.origin_kind == "consent",
        )
    )
    return {(row.patient_id, row.resource_type) for row in rows}
