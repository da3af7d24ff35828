"""The inbound QuestionnaireResponse parser (mappings.assessment_inbound): a pure function from the
sent JSON to a scored assessment of a known instrument, or an error naming the element as sent."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from mappings import assessment as outbound
from mappings.assessment_inbound import from_fhir
from mappings.context import MappingError
from service.domain.assessment import Assessment, score
from service.domain.instruments import load_registry
from tests.inbound.support import LOINC, VALUES, phq9_response
from tests.mappings.support import context, record

REGISTRY = load_registry()
PHQ9 = REGISTRY.get("phq-9")
BARC10 = REGISTRY.get("barc-10")


def refusal(resource: dict[str, Any]) -> MappingError:
    with pytest.raises(MappingError) as caught:
        from_fhir(resource, REGISTRY)
    return caught.value


def test_value_codings_are_matched_by_system_and_code_and_scored():
    found = from_fhir(phq9_response(), REGISTRY)
    assert (found.instrument.id, found.instrument.version) == ("phq-9", "1.0.0")
    assert [found.answers[i.link_id] for i in PHQ9.scored_items] == VALUES
    assert found.answers["69722-7"] == 1
    assert (found.score.total, found.score.band, found.score.flags) == (10, "moderate", ["self-harm-thoughts"])
    assert found.identifier == ("urn:oid:2.16.840.1.113883.19.5.42", "QR-1")
    assert found.completed_at.isoformat() == "2026-01-03T09:15:00-08:00"
    assert found.subject == {"reference": "Patient/abc"} and found.status == "completed"


def test_value_integers_are_matched_by_value_and_a_bare_url_is_the_newest_version():
    resource = phq9_response(questionnaire=PHQ9.url)
    for item in resource["item"]:
        item["answer"] = [{"valueInteger": 3}]
    found = from_fhir(resource, REGISTRY)
    assert found.instrument.version == PHQ9.version
    assert found.score.total == 27 and found.score.band == "severe"


def test_barc10_local_codes_and_nested_groups():
    options = BARC10.answer_lists[BARC10.items[0].answers]
    strongly_agree = max(options, key=lambda o: o.value)
    assert strongly_agree.code is not None
    answer = {"valueCoding": {"system": strongly_agree.code.system, "code": strongly_agree.code.code}}
    group = {"linkId": "all", "item": [{"linkId": i.link_id, "answer": [answer]} for i in BARC10.items]}
    resource = phq9_response(questionnaire=BARC10.url, item=[group])
    found = from_fhir(resource, REGISTRY)
    assert found.score.total == 10 * strongly_agree.value


def test_what_peerlink_sends_it_reads_back():
    """The outbound mapping's QuestionnaireResponse is read back to the same answers."""
    answers = dict(zip([i.link_id for i in PHQ9.scored_items], VALUES, strict=True)) | {"69722-7": 2}
    made = record(
        Assessment,
        "assessment-1",
        participant_id="participant-1",
        instrument="phq-9",
        instrument_version=PHQ9.version,
        answers=[{"link_id": k, "value": v} for k, v in answers.items()],
        administered_by="participant",
        completed_at="2026-01-05T12:00:00+00:00",
        **score(PHQ9, answers).model_dump(),
    )
    sent = outbound.questionnaire_response(made, PHQ9, context())
    assert from_fhir(json.loads(json.dumps(sent)), REGISTRY).answers == answers


@pytest.mark.parametrize(
    "canonical",
    [
        "https://elsewhere.example.org/Questionnaire/phq-9",
        "https://peerlink.example.org/fhir/Questionnaire/phq-9|9.9.9",
        None,
    ],
)
def test_an_unknown_questionnaire_is_refused_at_questionnaire(canonical):
    resource = phq9_response(questionnaire=canonical)
    if canonical is None:
        del resource["questionnaire"]
    assert refusal(resource).element == "QuestionnaireResponse.questionnaire"


def test_a_missing_required_item_is_named_by_its_link_id():
    resource = phq9_response()
    del resource["item"][8]  # the ninth item, 44260-8
    error = refusal(resource)
    assert error.element == "QuestionnaireResponse.item.where(linkId='44260-8')"
    assert "44260-8" in error.reason and "required" in error.reason


def test_an_item_left_unanswered_is_missing_too():
    resource = phq9_response()
    resource["item"][2] = {"linkId": resource["item"][2]["linkId"]}
    assert refusal(resource).element == "QuestionnaireResponse.item.where(linkId='44259-0')"


@pytest.mark.parametrize(
    "answer",
    [
        {"valueCoding": {"system": LOINC, "code": "LA6572-7"}},  # an option of another item's list
        {"valueCoding": {"system": "http://elsewhere.example.org", "code": "LA6571-9"}},
        {"valueInteger": 4},
        {"valueString": "3"},
    ],
)
def test_an_answer_that_is_no_option_names_the_item_never_the_value(answer):
    resource = phq9_response()
    resource["item"][3]["answer"] = [answer]
    error = refusal(resource)
    assert error.element == "QuestionnaireResponse.item[3]"
    assert "44254-1" in error.reason
    assert "4" not in error.reason.replace("44254-1", "")  # no answer value, no option value
    assert "LA65" not in error.reason


def test_unknown_items_two_answers_and_repeats_are_refused_at_the_item():
    resource = phq9_response()
    resource["item"][1]["linkId"] = "99999-9"
    assert refusal(resource).element == "QuestionnaireResponse.item[1]"
    resource = phq9_response()
    resource["item"][1]["answer"] = resource["item"][1]["answer"] * 2
    assert refusal(resource).element == "QuestionnaireResponse.item[1]"
    resource = phq9_response()
    resource["item"].append(copy.deepcopy(resource["item"][0]))
    assert refusal(resource).element == "QuestionnaireResponse.item[10]"


@pytest.mark.parametrize(
    ("changes", "element"),
    [
        ({"status": "in-progress"}, "QuestionnaireResponse.status"),
        ({"subject": None}, "QuestionnaireResponse.subject"),
        ({"authored": None}, "QuestionnaireResponse.authored"),
        ({"authored": "2026-01-03"}, "QuestionnaireResponse.authored"),
        ({"authored": "2026-01-03T09:15:00"}, "QuestionnaireResponse.authored"),
        ({"status": "finished"}, "QuestionnaireResponse.status"),  # not a FHIR code: fhir.resources refuses
    ],
)
def test_status_subject_and_authored(changes, element):
    resource = {k: v for k, v in phq9_response(**changes).items() if v is not None}
    assert refusal(resource).element.startswith(element)


def test_a_response_nested_too_deeply_is_refused_not_crashed_on():
    resource = phq9_response()
    group: dict[str, Any] = {"linkId": "x"}
    for level in range(300):
        group = {"linkId": f"g{level}", "item": [group]}
    resource["item"].append(group)
    assert refusal(resource).element == "QuestionnaireResponse"
    shallow = phq9_response()
    group = {"linkId": "x"}
    for level in range(10):
        group = {"linkId": f"g{level}", "item": [group]}
    shallow["item"].append(group)
    assert from_fhir(shallow, REGISTRY).score.total == 10
