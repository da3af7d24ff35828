"""Outcome instruments and assessments as FHIR.

An instrument is a ``Questionnaire`` (its canonical URL and version). An assessment is a
``QuestionnaireResponse`` (US Core QuestionnaireResponse) and the Observations derived from it
(US Core Observation Screening Assessment, category ``survey``): one per answered item, the total
score (a number, the severity band as its interpretation) and a panel whose ``hasMember`` lists
them; every Observation is ``derivedFrom`` the QuestionnaireResponse. The answers' codes (LOINC LA
codes, BARC-10's local system) come from the instrument's data file; nothing here is a literal code.

Ids: a Questionnaire is ``<instrument id>-<version>`` (each version of an instrument is its own
resource under the same canonical URL, so ``QuestionnaireResponse.questionnaire`` = ``url|version``
names exactly one); an assessment's resources are uuid5 ids of the program, and every Observation
carries a business identifier (``<program system>/assessment-observation|<assessment id>/<part>``)
so that an EHR that takes only conditional creates still receives each exactly once.

Corrections: an amendment is a new assessment with its own resources, status ``amended`` (FHIR:
"subsequent to being final, ... modified", which covers corrections). The assessment it corrects
keeps its ids but its QuestionnaireResponse and Observations become ``entered-in-error`` — FHIR's
status for a record withdrawn after release. An EHR drops entered-in-error results from its
flowsheets, trends and decision support, which is what a clinician must see: one score per
administration, the corrected one; the withdrawn one stays readable for the audit trail. (Updating
the original ids in place would lose the original answers at PeerLink's own FHIR API, where every
record keeps its own resources.)
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict

from service.domain.assessment import AdministeredBy, Assessment, AssessmentStatus
from service.domain.instruments import Coding, Instrument, Item

from . import codes
from .codes import Code
from .context import MappingContext

KIND = "assessment"
OBSERVATION_KIND = "assessment-observation"
TOTAL = "total"
PANEL = "panel"
_FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")


class Extensions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    ordinal_value: str


class AssessmentCodes(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    survey: Code
    extensions: Extensions


CODES = codes.load("assessment", AssessmentCodes)


def _coding(code: Coding) -> dict[str, str]:
    return {"system": code.system, "code": code.code, "display": code.display}


def _concept(code: Coding | None, text: str) -> dict[str, Any]:
    return {"coding": [_coding(code)], "text": text} if code else {"text": text}


def questionnaire_id(instrument: Instrument, ctx: MappingContext) -> str:
    """``phq-9-1.0.0``; a uuid5 when the id and version do not make a FHIR id."""
    readable = f"{instrument.id}-{instrument.version}"
    return readable if _FHIR_ID.match(readable) else ctx.id_for("instrument", f"{instrument.id}|{instrument.version}")


def questionnaire(instrument: Instrument, ctx: MappingContext) -> dict[str, Any]:
    items = []
    for item in instrument.items:
        options = []
        for option in instrument.answer_lists[item.answers]:
            ordinal = {"url": CODES.extensions.ordinal_value, "valueDecimal": option.value}
            value = {"valueCoding": _coding(option.code)} if option.code else {"valueInteger": option.value}
            options.append({"extension": [ordinal], **value})
        entry: dict[str, Any] = {"linkId": item.link_id}
        if item.code:
            entry["code"] = [_coding(item.code)]
        entry |= {"text": item.text, "type": "choice", "required": item.required, "answerOption": options}
        items.append(entry)
    resource: dict[str, Any] = {
        "resourceType": "Questionnaire",
        "id": questionnaire_id(instrument, ctx),
        "url": instrument.url,
        "version": instrument.version,
        "name": instrument.id.replace("-", "").upper(),
        "title": instrument.title,
        "status": "active",
        "subjectType": ["Patient"],
        "copyright": instrument.licence,
    }
    if instrument.code:
        resource["code"] = [_coding(instrument.code)]
    resource["item"] = items
    return ctx.finish(resource)


def observation_id(ctx: MappingContext, assessment_id: str, part: str) -> str:
    """The id of one of an assessment's Observations: ``part`` is ``panel``, ``total`` or an item's link id."""
    return ctx.id_for(OBSERVATION_KIND, f"{assessment_id}/{part}")


def _status(assessment: Assessment, superseded: bool, current: str) -> str:
    if superseded:
        return "entered-in-error"
    return "amended" if assessment.status is AssessmentStatus.AMENDED else current


def _performer(assessment: Assessment, ctx: MappingContext) -> dict[str, str]:
    if assessment.administered_by is AdministeredBy.PEER_SPECIALIST and assessment.specialist_id:
        return ctx.reference("specialist", assessment.specialist_id)
    return ctx.reference("participant", assessment.participant_id)


def _answer(instrument: Instrument, item: Item, value: int) -> dict[str, Any]:
    option = next(o for o in instrument.answer_lists[item.answers] if o.value == value)
    return {"valueCoding": _coding(option.code)} if option.code else {"valueInteger": value}


def questionnaire_response(
    assessment: Assessment, instrument: Instrument, ctx: MappingContext, superseded: bool = False
) -> dict[str, Any]:
    answered = assessment.answered
    items = []
    for item in instrument.items:
        if item.link_id in answered:
            answer = _answer(instrument, item, answered[item.link_id])
            items.append({"linkId": item.link_id, "text": item.text, "answer": [answer]})
    resource: dict[str, Any] = {
        "resourceType": "QuestionnaireResponse",
        "id": ctx.id_for(KIND, assessment.id),
        "identifier": ctx.identifier(KIND, assessment.id),
        "questionnaire": f"{instrument.url}|{instrument.version}",
        "status": _status(assessment, superseded, "completed"),
        "subject": ctx.reference("participant", assessment.participant_id),
    }
    if assessment.encounter_id:
        resource["encounter"] = ctx.reference("encounter", assessment.encounter_id)
    resource |= {"authored": assessment.completed_at.isoformat(), "author": _performer(assessment, ctx)}
    if assessment.administered_by is AdministeredBy.PARTICIPANT:
        resource["source"] = ctx.reference("participant", assessment.participant_id)
    resource["item"] = items
    return ctx.finish(resource)


def _observation(
    assessment: Assessment, ctx: MappingContext, part: str, code: dict[str, Any], response: dict[str, Any]
) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "id": observation_id(ctx, assessment.id, part),
        "identifier": [ctx.identifier(OBSERVATION_KIND, f"{assessment.id}/{part}")],
        "status": _status(assessment, response["status"] == "entered-in-error", "final"),
        "category": [CODES.survey.concept()],
        "code": code,
        "subject": ctx.reference("participant", assessment.participant_id),
    }
    if assessment.encounter_id:
        resource["encounter"] = ctx.reference("encounter", assessment.encounter_id)
    resource |= {
        "effectiveDateTime": assessment.completed_at.isoformat(),
        "performer": [_performer(assessment, ctx)],
        "derivedFrom": [{"reference": f"QuestionnaireResponse/{response['id']}"}],
    }
    return resource


def to_fhir(
    assessment: Assessment, instrument: Instrument, ctx: MappingContext, superseded: bool = False
) -> list[dict[str, Any]]:
    """[QuestionnaireResponse, panel Observation, total Observation, one Observation per answered item];
    ``superseded``: a later amendment corrects this assessment (its resources are entered-in-error)."""
    response = questionnaire_response(assessment, instrument, ctx, superseded)
    answered = assessment.answered
    items = []
    for item in instrument.items:
        if item.link_id in answered:
            observation = _observation(assessment, ctx, item.link_id, _concept(item.code, item.text), response)
            observation |= _answer(instrument, item, answered[item.link_id])
            if "valueCoding" in observation:
                observation["valueCodeableConcept"] = {"coding": [observation.pop("valueCoding")]}
            items.append(ctx.finish(observation))
    total = _observation(assessment, ctx, TOTAL, _concept(instrument.total_code, f"{instrument.title} total"), response)
    total["valueInteger"] = assessment.total
    total["interpretation"] = [{"text": assessment.band_display}]
    total = ctx.finish(total)
    panel = _observation(assessment, ctx, PANEL, _concept(instrument.code, instrument.title), response)
    panel["hasMember"] = [{"reference": f"Observation/{o['id']}"} for o in (total, *items)]
    return [response, ctx.finish(panel), total, *items]
