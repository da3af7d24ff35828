"""Instruments as Questionnaire; assessments as QuestionnaireResponse + US Core screening Observations."""

from __future__ import annotations

import pytest

from mappings import assessment
from mappings.models import model_class
from service.domain.assessment import Assessment, score
from service.domain.instruments import load_registry
from tests.mappings.support import STAMP, assert_golden, context, record

REGISTRY = load_registry()
PHQ9 = REGISTRY.get("phq-9")
BARC10 = REGISTRY.get("barc-10")
VALUES = [2, 2, 1, 2, 1, 1, 0, 0, 1]
QR_PROFILE = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-questionnaireresponse"
OBS_PROFILE = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-observation-screening-assessment"


def _assessment(instrument, answers, **overrides):
    scored = score(instrument, answers)
    fields = {
        "participant_id": "participant-1",
        "instrument": instrument.id,
        "instrument_version": instrument.version,
        "answers": [{"link_id": k, "value": v} for k, v in answers.items()],
        "administered_by": "peer-specialist",
        "specialist_id": "specialist-1",
        "encounter_id": "encounter-1",
        "completed_at": STAMP.isoformat(),
        **scored.model_dump(mode="json"),
        **overrides,
    }
    return record(Assessment, "assessment-1", **fields)


def _valid(resource):
    model_class(resource["resourceType"]).model_validate(resource)
    return resource


def test_golden_questionnaire():
    resource = _valid(assessment.questionnaire(PHQ9, context()))
    assert (resource["url"], resource["version"]) == (PHQ9.url, "1.0.0")
    assert resource["code"][0]["code"] == "44249-1"
    first = resource["item"][0]
    assert first["linkId"] == "44250-9" and first["answerOption"][3]["valueCoding"]["code"] == "LA6571-9"
    assert first["answerOption"][3]["extension"][0]["valueDecimal"] == 3
    assert_golden("questionnaire-phq-9", resource)


def test_golden_assessment_set():
    answers = dict(zip([i.link_id for i in PHQ9.scored_items], VALUES, strict=True)) | {"69722-7": 1}
    found = [_valid(r) for r in assessment.to_fhir(_assessment(PHQ9, answers), PHQ9, context())]
    response, panel, total, *items = found
    assert [r["resourceType"] for r in found] == ["QuestionnaireResponse"] + ["Observation"] * 12
    assert response["meta"]["profile"] == [QR_PROFILE] and response["status"] == "completed"
    assert response["questionnaire"] == f"{PHQ9.url}|1.0.0" and len(response["item"]) == 10
    derived = [{"reference": f"QuestionnaireResponse/{response['id']}"}]
    for observation in (panel, total, *items):
        assert observation["meta"]["profile"] == [OBS_PROFILE]
        assert observation["category"][0]["coding"][0]["code"] == "survey"
        assert observation["derivedFrom"] == derived
    assert panel["code"]["coding"][0]["code"] == "44249-1" and not any(k.startswith("value") for k in panel)
    assert panel["hasMember"] == [{"reference": f"Observation/{o['id']}"} for o in (total, *items)]
    assert total["code"]["coding"][0]["code"] == "44261-6" and total["valueInteger"] == sum(VALUES) == 10
    assert total["interpretation"] == [{"text": "Moderate depression"}]
    assert items[0]["valueCodeableConcept"]["coding"][0]["code"] == "LA6570-1"
    assert len({o["id"] for o in found}) == len(found)
    assert_golden("assessment-qr", response)
    assert_golden("assessment-panel", panel)
    assert_golden("assessment-total", total)
    assert_golden("assessment-item", items[0])


def test_self_administered_amended_barc10_uses_local_codes():
    answers = {i.link_id: 6 for i in BARC10.items}
    record_ = _assessment(
        BARC10,
        answers,
        administered_by="participant",
        specialist_id=None,
        encounter_id=None,
        status="amended",
        amends_id="assessment-0",
    )
    response, panel, total, *items = [_valid(r) for r in assessment.to_fhir(record_, BARC10, context())]
    patient = context().reference("participant", "participant-1")
    assert response["status"] == "amended" and response["author"] == patient == response["source"]
    assert "encounter" not in response and panel["status"] == "amended"
    assert total["valueInteger"] == 60 and total["performer"] == [patient]
    local = BARC10.items[0].code
    assert local is not None and items[0]["valueCodeableConcept"]["coding"][0]["system"] == local.system


@pytest.mark.parametrize("instrument_id", ["phq-9", "gad-7", "barc-10"])
def test_every_instrument_is_a_valid_questionnaire(instrument_id):
    instrument = REGISTRY.get(instrument_id)
    resource = _valid(assessment.questionnaire(instrument, context()))
    assert [i["linkId"] for i in resource["item"]] == [i.link_id for i in instrument.items]


def test_a_corrected_assessment_is_entered_in_error_and_every_observation_has_an_identifier():
    answers = dict(zip([i.link_id for i in PHQ9.scored_items], VALUES, strict=True))
    found = [_valid(r) for r in assessment.to_fhir(_assessment(PHQ9, answers), PHQ9, context(), superseded=True)]
    assert {r["status"] for r in found} == {"entered-in-error"}
    kept = assessment.to_fhir(_assessment(PHQ9, answers), PHQ9, context())
    assert [r["id"] for r in found] == [r["id"] for r in kept]  # the same resources, withdrawn
    values = [o["identifier"][0]["value"] for o in kept[1:]]
    assert values[:2] == ["assessment-1/panel", "assessment-1/total"] and len(set(values)) == len(values)
    assert kept[1]["identifier"][0]["system"] == "https://peer.example.org/ids/assessment-observation"


def test_a_questionnaire_id_is_the_instrument_and_its_version():
    ctx = context()
    assert assessment.questionnaire_id(PHQ9, ctx) == "phq-9-1.0.0"
    odd = PHQ9.model_copy(update={"version": "2024_01"})
    assert assessment.questionnaire_id(odd, ctx) == ctx.id_for("instrument", "phq-9|2024_01")  # "_" is no id char
