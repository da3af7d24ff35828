"""A QuestionnaireResponse for one of PeerLink's instruments, from a clinic or a participant's app:
read (``mappings.assessment_inbound``), scored and stored as an assessment (``records.assessments``).

- The subject must be a Patient this program serves (a literal reference, or an identifier such as
  an MRN naming one participant); a clinic's client (one acting for an organisation) may only send
  for a Patient inside its data boundary: any other is refused exactly as one that does not exist.
- Who administered it: a peer specialist when ``author`` is one of the program's Practitioners or
  PractitionerRoles; otherwise the participant (the instruments are self-report questionnaires, and
  a clinic's clinician or an app records the participant's own answers).
- The sender's identifier (``QuestionnaireResponse.identifier``) is claimed in
  ``external_identifiers``: a resend of a completed response returns the assessment it made (200);
  a response with status ``amended`` and a known identifier corrects that assessment by amendment
  (the newest of its chain), as a correction in the peer API does; one PeerLink does not know is
  recorded as a new assessment. The identifier must name a response about the same person (else
  409). If-None-Exist takes ``identifier=system|value`` (the sender's, or PeerLink's own).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection

from mappings import assessment as assessment_map
from mappings.assessment_inbound import InboundAssessment, from_fhir
from mappings.context import MappingContext, MappingError
from service.domain import Program
from service.domain.assessment import AdministeredBy, Answer, Assessment, AssessmentAnswers, AssessmentFields
from service.domain.errors import Conflict, NotFound
from service.domain.instruments import Registry
from service.fhir import repository
from service.fhir.projection import instant
from service.fhir.render import renders
from service.fhir.repository import StoredResource
from service.records import assessments, operations

from .errors import PLAIN, Where, bad_request, from_mapping, refused
from .lookups import claim, claimed, literal, records_with_identifier
from .outcomes import Outcome

KIND = assessment_map.KIND  # also the external_identifiers kind of a sender's response identifiers
RESOURCE_TYPE = "QuestionnaireResponse"
NO_PATIENT = "names no Patient of this program that this client may see"


@dataclass(frozen=True)
class Received:
    """What a QuestionnaireResponse left: the interaction's outcome and the assessment behind it."""

    outcome: Outcome
    assessment_id: str


def read(resource: Any, registry: Registry, where: Where = PLAIN) -> InboundAssessment:
    if not isinstance(resource, dict):
        raise bad_request(where(RESOURCE_TYPE), "expected a JSON object")
    try:
        return from_fhir(resource, registry)
    except MappingError as exc:
        raise from_mapping(exc, where, RESOURCE_TYPE) from None


async def subject_participant(
    conn: AsyncConnection, program: Program, sent: InboundAssessment, organization: str | None, where: Where
) -> str:
    """The participant the response is about; inside the sender's data boundary."""
    ctx = MappingContext(program)
    element = where(f"{RESOURCE_TYPE}.subject")
    reference = sent.subject.get("reference")
    participant_id: str | None = None
    if isinstance(reference, str) and reference:
        found = literal(reference)
        if found is not None and found[0] == "Patient":
            participant_id = await repository.source_of(conn, program.id, "Patient", found[1])
    else:
        ident = sent.subject.get("identifier")
        if isinstance(ident, dict) and ident.get("system") and ident.get("value"):
            token = f"{ident['system']}|{ident['value']}"
            matches = await records_with_identifier(conn, program.id, "Patient", token)
            if len(matches) > 1:
                raise refused(f"{element}.identifier", "matches more than one participant")
            participant_id = matches[0] if matches else None
        else:
            raise refused(element, "give a reference to the Patient, or its identifier")
    if participant_id is None:
        raise refused(element, NO_PATIENT)
    if organization is not None:
        try:
            patient = ctx.id_for("participant", participant_id)
            await repository.current(conn, program.id, "Patient", patient, organization)
        except NotFound:
            raise refused(element, NO_PATIENT) from None
    return participant_id


async def administered(
    conn: AsyncConnection, program: Program, sent: InboundAssessment
) -> tuple[AdministeredBy, str | None]:
    """(who administered it, the specialist): a specialist only when the author is one of ours."""
    reference = (sent.author or {}).get("reference")
    found = literal(reference) if isinstance(reference, str) else None
    if found is not None and found[0] in ("Practitioner", "PractitionerRole"):
        source = await repository.source(conn, program.id, found[0], found[1])
        if source is not None and source[0] == "specialist":
            return AdministeredBy.PEER_SPECIALIST, source[1]
    return AdministeredBy.PARTICIPANT, None


def _condition(query: str, element: str) -> tuple[str, str]:
    params = parse_qsl(query.split("?", 1)[-1].strip(), keep_blank_values=True)
    if len(params) != 1 or params[0][0] != "identifier" or "|" not in params[0][1]:
        raise bad_request(element, "a QuestionnaireResponse is matched by identifier=system|value only")
    system, _, value = params[0][1].partition("|")
    if not system or not value:
        raise bad_request(element, "give both the system and the value: identifier=system|value")
    return system, value


async def held(conn: AsyncConnection, program: Program, system: str, value: str) -> str | None:
    """The assessment an identifier names: the sender's (as claimed), or PeerLink's own."""
    if system == MappingContext(program).identifier(KIND, "")["system"]:
        found = await assessments.REPOSITORY.find(conn, program.id, value)
        return None if found is None else found.id
    return await claimed(conn, program.id, KIND, system, value)


async def newest(conn: AsyncConnection, program_id: str, assessment_id: str) -> Assessment:
    """The standing correction of an assessment (itself when it was never corrected)."""
    current: Assessment = await assessments.REPOSITORY.get(conn, program_id, assessment_id)
    for _ in range(1000):
        page = await assessments.REPOSITORY.list(conn, program_id, equals={"amends_id": current.id}, limit=1)
        if not page.items:
            return current
        current = page.items[0]
    return current


async def _about(conn: AsyncConnection, program_id: str, assessment_id: str, participant_id: str) -> None:
    """An identifier held for an assessment of someone else names nothing this sender may reuse."""
    found: Assessment = await assessments.REPOSITORY.get(conn, program_id, assessment_id)
    if found.participant_id != participant_id:
        raise Conflict("the QuestionnaireResponse's identifier names a response about another person")


def _answers(sent: InboundAssessment) -> list[Answer]:
    return [Answer(link_id=link_id, value=value) for link_id, value in sent.answers.items()]


async def _correct(
    conn: AsyncConnection,
    program: Program,
    registry: Registry,
    sent: InboundAssessment,
    original_id: str,
    participant_id: str,
    where: Where,
) -> tuple[Assessment, bool]:
    """An amended response for one we hold: the correction (or the standing one, when it says the same)."""
    standing = await newest(conn, program.id, original_id)
    if standing.instrument != sent.instrument.id:
        raise refused(where(f"{RESOURCE_TYPE}.questionnaire"), "is not the Questionnaire of the response it amends")
    by, specialist = await administered(conn, program, sent)
    if standing.answered == sent.answers and standing.completed_at == sent.completed_at:
        return standing, False
    correction = AssessmentAnswers(
        answers=_answers(sent), administered_by=by, specialist_id=specialist, completed_at=sent.completed_at
    )
    amended = await assessments.amend(
        conn, program.id, standing.id, correction, registry, expected_version=None, now=operations.utcnow()
    )
    return amended, True


async def receive_questionnaire_response(
    conn: AsyncConnection,
    program: Program,
    resource: Any,
    registry: Registry,
    *,
    if_none_exist: str | None = None,
    organization: str | None = None,
    where: Where = PLAIN,
    condition_element: str = "If-None-Exist",
) -> Received:
    """The assessment a QuestionnaireResponse makes (201), corrects (201), or made before (200)."""
    sent = read(resource, registry, where)
    ctx = MappingContext(program)

    def answer(record_id: str, created: bool) -> Received:
        return Received(Outcome(RESOURCE_TYPE, ctx.id_for(KIND, record_id), created), record_id)

    participant_id = await subject_participant(conn, program, sent, organization, where)
    if if_none_exist is not None:
        match = await held(conn, program, *_condition(if_none_exist, condition_element))
        if match is not None:
            await _about(conn, program.id, match, participant_id)
            return answer(match, False)
    known = await held(conn, program, *sent.identifier) if sent.identifier else None
    if known is not None:
        await _about(conn, program.id, known, participant_id)
        if sent.status != "amended":
            return answer(known, False)
        record, created = await _correct(conn, program, registry, sent, known, participant_id, where)
        return answer(record.id, created)
    by, specialist = await administered(conn, program, sent)
    fields = AssessmentFields(
        participant_id=participant_id,
        instrument=sent.instrument.id,
        instrument_version=sent.instrument.version,
        answers=_answers(sent),
        administered_by=by,
        specialist_id=specialist,
        completed_at=sent.completed_at,
    )
    at = operations.utcnow()
    record = await assessments.create(conn, program.id, fields, registry, at)
    if sent.identifier is not None:
        await claim(conn, program.id, KIND, *sent.identifier, record.id, at)
    return answer(record.id, True)


async def stored_response(
    conn: AsyncConnection, program: Program, received: Received, registry: Registry
) -> StoredResource:
    """The QuestionnaireResponse to answer with: the projection's, once assessments are projected;
    until then the same mapping's rendering of the assessment, as its first version."""
    outcome = received.outcome
    if renders(KIND):
        return await repository.current(conn, program.id, outcome.resource_type, outcome.resource_id)
    record: Assessment = await assessments.REPOSITORY.get(conn, program.id, received.assessment_id)
    ctx = MappingContext(program)
    resource = assessment_map.questionnaire_response(
        record, registry.get(record.instrument, record.instrument_version), ctx
    )
    meta = {"versionId": "1", "lastUpdated": instant(record.created_at), **resource.get("meta", {})}
    head = {"resourceType": RESOURCE_TYPE, "id": outcome.resource_id, "meta": meta}
    body = orjson.dumps({**head, **{key: value for key, value in resource.items() if key not in head}})
    patient = ctx.id_for("participant", record.participant_id)
    return StoredResource(RESOURCE_TYPE, outcome.resource_id, 1, record.created_at, body, patient)
