"""Outcome assessments under /fhir: every instrument a Questionnaire (before any assessment exists), each
assessment a QuestionnaireResponse with its screening Observations, their search parameters and
includes, a correction (the corrected one entered-in-error), the completed referral's Task listing
the baseline and latest scores, and the consent boundary (no `assessments` category: nothing)."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from mappings.ids import fhir_id
from mappings.models import model_class
from service.domain.instruments import load_registry
from tests.api.test_assessments import GAD7_ITEMS, body, phq9
from tests.conftest import token_headers
from tests.factories import TODAY, World, at, create, specialist_body

OBS_PROFILE = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-observation-screening-assessment"
QR_PROFILE = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-questionnaireresponse"
REGISTRY = load_registry()
PHQ9 = REGISTRY.get("phq-9")
HOSPITAL = "urn:oid:2.16.840.1.113883.3.7001|general-hospital"
NOBODY = "00000000-0000-0000-0000-000000000000"

# (type, parameter) -> (a query that finds the assessment's resource, one that does not, which resource)
ASSESSMENT_CASES: dict[tuple[str, str], tuple[str, str, str]] = {
    ("Observation", "date"): ("{completed_day}", "gt{completed_day}", "total"),
    ("Observation", "encounter"): ("Encounter/{encounter}", f"Encounter/{NOBODY}", "total"),
    ("Observation", "performer"): ("Practitioner/{practitioner}", "Patient/{patient}", "total"),
    ("Observation", "derived-from"): ("QuestionnaireResponse/{response}", f"QuestionnaireResponse/{NOBODY}", "total"),
    ("Observation", "has-member"): ("Observation/{total}", f"Observation/{NOBODY}", "panel"),
    ("QuestionnaireResponse", "questionnaire"): ("{url}", "{url}|9.9.9", "response"),
    ("QuestionnaireResponse", "authored"): ("le{completed_day}", "lt{completed_day}", "response"),
    ("QuestionnaireResponse", "author"): ("{practitioner}", "{patient}", "response"),
    ("QuestionnaireResponse", "encounter"): ("{encounter}", NOBODY, "response"),
    ("Questionnaire", "identifier:missing"): ("true", "false", "questionnaire"),
    ("Questionnaire", "url"): ("{url}", "{url}x", "questionnaire"),
    ("Questionnaire", "version"): ("1.0.0", "2.0.0", "questionnaire"),
    ("Questionnaire", "name"): ("phq", "gad", "questionnaire"),
    ("Questionnaire", "title"): ("patient health", "generalized", "questionnaire"),
    ("Questionnaire", "status"): ("active", "retired", "questionnaire"),
    ("Questionnaire", "code"): ("http://loinc.org|44249-1", "http://loinc.org|69737-5", "questionnaire"),
}


def _valid(resource: dict[str, Any]) -> dict[str, Any]:
    model_class(resource["resourceType"]).model_validate(resource)
    return resource


async def _record(client: httpx.AsyncClient, world: World, values: list[int], days_ago: int) -> dict[str, Any]:
    created = await client.post("/peer/v1/assessments", json=body(world, phq9(values), days_ago=days_ago))
    assert created.status_code == 201, created.text
    record: dict[str, Any] = created.json()
    return record


def _ids(program: Any, world: World, assessment_id: str) -> dict[str, str]:
    system = program.identifier_system

    def observation(part: str) -> str:
        return fhir_id(system, "assessment-observation", f"{assessment_id}/{part}")

    return {
        "response": fhir_id(system, "assessment", assessment_id),
        "total": observation("total"),
        "panel": observation("panel"),
        "item": observation("44250-9"),
        "patient": fhir_id(system, "participant", world.ids["participant"]),
        "practitioner": fhir_id(system, "specialist", world.ids["specialist"]),
        "encounter": fhir_id(system, "encounter", world.ids["encounter"]),
        "questionnaire": "phq-9-1.0.0",
        "url": PHQ9.url,
        "completed_day": str(at(3).date()),
    }


@pytest.fixture
async def outcome(client: httpx.AsyncClient, program: Any) -> tuple[World, dict[str, Any], dict[str, str]]:
    world = await World(client).build()
    record = await _record(client, world, [2, 2, 1, 2, 1, 1, 0, 0, 1], days_ago=3)
    return world, record, _ids(program, world, record["id"])


async def _found(client: httpx.AsyncClient, path: str, **params: str) -> dict[str, Any]:
    response = await client.get(f"/fhir/{path}", params=params)
    assert response.status_code == 200, response.text
    bundle: dict[str, Any] = response.json()
    return bundle


def matched(bundle: dict[str, Any], mode: str = "match") -> list[str]:
    return [
        f"{e['resource']['resourceType']}/{e['resource']['id']}"
        for e in bundle.get("entry", [])
        if e["search"]["mode"] == mode
    ]


async def test_every_instrument_is_a_questionnaire_before_any_assessment(client):
    bundle = await _found(client, "Questionnaire")
    served = {e["resource"]["id"]: _valid(e["resource"]) for e in bundle["entry"]}
    assert set(served) == {f"{i.id}-{i.version}" for i in REGISTRY.instruments.values()}
    phq = served["phq-9-1.0.0"]
    assert (phq["url"], phq["version"], phq["status"]) == (PHQ9.url, "1.0.0", "active")
    read = await client.get("/fhir/Questionnaire/phq-9-1.0.0")
    assert read.status_code == 200 and read.json()["item"][0]["linkId"] == "44250-9"
    assert read.headers["etag"] == 'W/"1"'
    by_url = await _found(client, "Questionnaire", url=PHQ9.url, status="active")
    assert matched(by_url) == ["Questionnaire/phq-9-1.0.0"]
    assert matched(await _found(client, "Questionnaire", name="BARC")) == ["Questionnaire/barc-10-1.0.0"]
    assert matched(await _found(client, "Questionnaire", status="draft")) == []


async def test_an_assessment_is_a_questionnaire_response_and_screening_observations(client, outcome):
    _, record, ids = outcome
    response = _valid((await client.get(f"/fhir/QuestionnaireResponse/{ids['response']}")).json())
    assert response["meta"]["profile"] == [QR_PROFILE] and response["status"] == "completed"
    assert response["questionnaire"] == f"{PHQ9.url}|1.0.0"
    assert response["subject"] == {"reference": f"Patient/{ids['patient']}"}
    total = _valid((await client.get(f"/fhir/Observation/{ids['total']}")).json())
    assert total["meta"]["profile"] == [OBS_PROFILE] and total["status"] == "final"
    assert total["valueInteger"] == record["total"] == 10
    assert total["code"]["coding"][0]["code"] == "44261-6"
    assert total["category"][0]["coding"][0]["code"] == "survey"
    assert total["derivedFrom"] == [{"reference": f"QuestionnaireResponse/{ids['response']}"}]
    panel = (await client.get(f"/fhir/Observation/{ids['panel']}")).json()
    assert {"reference": f"Observation/{ids['item']}"} in panel["hasMember"]

    # what an EHR asks: the scores of a patient, by code, category and date
    scores = await _found(
        client,
        "Observation",
        patient=ids["patient"],
        code="http://loinc.org|44261-6",
        category="survey",
        date=f"ge{at(10).date()}",
        status="final",
        _include="Observation:derived-from",
    )
    assert matched(scores) == [f"Observation/{ids['total']}"]
    assert matched(scores, "include") == [f"QuestionnaireResponse/{ids['response']}"]
    everything = await _found(client, "Observation", subject=f"Patient/{ids['patient']}", _summary="count")
    assert everything["total"] == 2 + 9  # panel, total and the nine answered items
    answers = await _found(
        client,
        "QuestionnaireResponse",
        patient=ids["patient"],
        questionnaire=f"{PHQ9.url}|1.0.0",
        _include="QuestionnaireResponse:questionnaire",
    )
    assert matched(answers) == [f"QuestionnaireResponse/{ids['response']}"]
    assert matched(answers, "include") == ["Questionnaire/phq-9-1.0.0"]
    answered = await _found(client, "Questionnaire", url=PHQ9.url, _revinclude="QuestionnaireResponse:questionnaire")
    assert matched(answered, "include") == [f"QuestionnaireResponse/{ids['response']}"]
    members = await _found(client, "Observation", _id=ids["panel"], _include="Observation:has-member")
    assert len(matched(members, "include")) == 10 and f"Observation/{ids['total']}" in matched(members, "include")


async def test_every_assessment_parameter_finds_and_excludes(client, outcome):
    _, _, ids = outcome
    failures = []
    for (resource_type, param), (hit, miss, which) in ASSESSMENT_CASES.items():
        me = f"{resource_type}/{ids[which]}"
        for value, expected in ((hit, True), (miss, False)):
            response = await client.get(f"/fhir/{resource_type}", params={param: value.format(**ids)})
            if response.status_code != 200:
                failures.append(f"{resource_type}?{param}={value}: {response.status_code} {response.text[:200]}")
            elif (me in matched(response.json())) is not expected:
                failures.append(f"{resource_type}?{param}={value}: expected found={expected}")
    assert not failures, "\n".join(failures)


async def test_a_correction_leaves_the_corrected_assessment_entered_in_error(client, program, outcome):
    world, record, ids = outcome
    correction = {k: v for k, v in body(world, phq9([0] * 9)).items() if k not in ("participant_id", "instrument")}
    amended = await client.post(f"/peer/v1/assessments/{record['id']}/amend", json=correction)
    assert amended.status_code == 201, amended.text
    fixed = _ids(program, world, amended.json()["id"])
    for path in (f"QuestionnaireResponse/{ids['response']}", f"Observation/{ids['total']}"):
        old = (await client.get(f"/fhir/{path}")).json()
        assert old["status"] == "entered-in-error" and old["meta"]["versionId"] == "2"
    new_total = (await client.get(f"/fhir/Observation/{fixed['total']}")).json()
    assert (new_total["status"], new_total["valueInteger"]) == ("amended", 0)
    new_response = (await client.get(f"/fhir/QuestionnaireResponse/{fixed['response']}")).json()
    assert new_response["status"] == "amended"
    standing = await _found(client, "Observation", code="http://loinc.org|44261-6", status="final,amended")
    assert matched(standing) == [f"Observation/{fixed['total']}"]


async def test_the_completed_referrals_task_lists_baseline_and_latest_scores(client, program, outcome):
    world, baseline, ids = outcome
    before = await _record(client, world, [3] * 9, days_ago=40)  # before the referral: not its baseline
    latest = await _record(client, world, [1] * 9, days_ago=1)
    gad = await client.post(
        "/peer/v1/assessments",
        json=body(world, dict.fromkeys(GAD7_ITEMS, 2)) | {"instrument": "gad-7"},
    )
    assert gad.status_code == 201, gad.text
    referral = world.ids["referral"]
    steps: tuple[tuple[str, dict[str, str]], ...] = (
        ("receive", {}),
        ("accept", {"specialist_id": world.ids["specialist"]}),
        ("start", {}),
        ("complete", {"outcome_summary": "Connected to a group."}),
    )
    for action, extra in steps:
        done = await client.post(f"/peer/v1/referrals/{referral}/{action}", json={"by": "peer", **extra})
        assert done.status_code == 200, done.text
    task_id = fhir_id(program.identifier_system, "referral-task", referral)
    task = _valid((await client.get(f"/fhir/Task/{task_id}")).json())
    assert task["status"] == "completed"
    scores = [o for o in task["output"] if o["type"]["coding"][0]["code"].endswith("-outcome")]
    references = [o["valueReference"]["reference"] for o in scores]
    # the referral's baseline is the first assessment since it was requested (5 days ago), as for sessions
    assert f"Observation/{ids['total']}" in references
    assert f"Observation/{_ids(program, world, latest['id'])['total']}" in references
    assert f"Observation/{_ids(program, world, before['id'])['total']}" not in references
    gad_total = _ids(program, world, gad.json()["id"])["total"]
    gad_title = REGISTRY.get("gad-7").title
    gad_output = {"reference": f"Observation/{gad_total}", "display": f"{gad_title}: baseline outcome score"}
    assert gad_output in [o["valueReference"] for o in scores]
    codes = sorted(o["type"]["coding"][0]["code"] for o in scores)
    assert codes == ["baseline-outcome", "baseline-outcome", "latest-outcome"]  # GAD-7 has only a baseline
    assert baseline["id"] != before["id"]
    for reference in references:
        assert (await client.get(f"/fhir/{reference}")).json()["valueInteger"] >= 0

    # an assessment recorded after completion changes the Task's latest score
    newest = await _record(client, world, [0] * 9, days_ago=0)
    task = (await client.get(f"/fhir/Task/{task_id}")).json()
    assert f"Observation/{_ids(program, world, newest['id'])['total']}" in [
        o["valueReference"]["reference"] for o in task["output"] if "valueReference" in o
    ]


async def test_a_consent_without_the_assessments_category_opens_none(client, database, program, outcome):
    world, _, ids = outcome
    system, value = HOSPITAL.split("|")
    recipient = {"name": "General Hospital", "identifier": {"type": "other", "system": system, "value": value}}
    period = {"start": str(TODAY)}
    everything_else = ["encounters", "notes", "care-team", "referrals", "goals", "demographics"]
    consent = {"participant_id": world.ids["participant"], "recipient": recipient, "period": period}
    created = await client.post("/peer/v1/consents", json={**consent, "categories": everything_else})
    assert created.status_code == 201, created.text
    hospital = await token_headers(client, database, program, "hospital", "system/*.rs", organization=HOSPITAL)

    async def seen(path: str, **params: str) -> list[str]:
        response = await client.get(f"/fhir/{path}", params=params, headers=hospital)
        assert response.status_code == 200, response.text
        return matched(response.json())

    assert await seen("Patient") == [f"Patient/{ids['patient']}"]  # the consent is in force
    assert await seen("Observation", patient=ids["patient"]) == []
    assert await seen("QuestionnaireResponse") == []
    for path in (f"Observation/{ids['total']}", f"QuestionnaireResponse/{ids['response']}"):
        assert (await client.get(f"/fhir/{path}", headers=hospital)).status_code == 404
    assert len(await seen("Questionnaire")) == len(REGISTRY.instruments)  # no one's data: public

    await client.post("/peer/v1/consents", json={**consent, "categories": ["assessments"]})
    assert len(await seen("Observation", patient=ids["patient"])) == 11
    assert await seen("QuestionnaireResponse") == [f"QuestionnaireResponse/{ids['response']}"]
    read = await client.get(f"/fhir/Observation/{ids['total']}", headers=hospital)
    assert read.status_code == 200 and read.json()["valueInteger"] == 10


async def test_the_capability_statement_lists_the_assessment_types(client):
    statement = (await client.get("/fhir/metadata")).json()
    by_type = {r["type"]: r for r in statement["rest"][0]["resource"]}
    assert by_type["Observation"]["supportedProfile"] == [OBS_PROFILE]
    assert by_type["QuestionnaireResponse"]["supportedProfile"] == [QR_PROFILE]
    names = {t: {p["name"] for p in by_type[t]["searchParam"]} for t in ("Observation", "QuestionnaireResponse")}
    assert {"patient", "subject", "code", "date", "category", "status"} <= names["Observation"]
    assert {"patient", "subject", "questionnaire", "authored", "status"} <= names["QuestionnaireResponse"]
    assert {"url", "name", "status"} <= {p["name"] for p in by_type["Questionnaire"]["searchParam"]}
    assert {"Observation:derived-from", "Observation:has-member"} <= set(by_type["Observation"]["searchInclude"])
    assert "QuestionnaireResponse:questionnaire" in by_type["QuestionnaireResponse"]["searchInclude"]
    for resource_type in ("Questionnaire", "QuestionnaireResponse", "Observation"):
        assert {"read", "vread", "search-type"} <= {i["code"] for i in by_type[resource_type]["interaction"]}


async def test_smart_scopes_name_the_new_types(client, database, program, outcome):
    _, _, ids = outcome
    scores = await token_headers(client, database, program, "scores", "system/Observation.rs")
    found = await client.get(
        "/fhir/Observation", params={"_id": ids["total"], "_include": "Observation:derived-from"}, headers=scores
    )
    assert found.status_code == 200 and matched(found.json()) == [f"Observation/{ids['total']}"]
    assert matched(found.json(), "include") == []  # the QuestionnaireResponse needs its own scope
    assert (await client.get("/fhir/QuestionnaireResponse", headers=scores)).status_code == 403
    v1 = await token_headers(client, database, program, "answers", "system/QuestionnaireResponse.read")
    read = await client.get(f"/fhir/QuestionnaireResponse/{ids['response']}", headers=v1)
    assert read.status_code == 200 and read.json()["id"] == ids["response"]
    assert (await client.get("/fhir/Questionnaire", headers=v1)).status_code == 403


async def test_a_consent_opens_assessments_not_another_clinics_clinical_context(client, database, program):
    """The clinic's referral came with an Observation and a QuestionnaireResponse of its own: a hospital
    the participant consents to share assessments with sees the program's assessments, not those."""
    from tests.inbound.test_context_search import context_bundle

    sent = await client.post(
        "/fhir", content=orjson.dumps(context_bundle()), headers={"Content-Type": "application/fhir+json"}
    )
    assert sent.status_code == 200, sent.text
    patient = sent.json()["entry"][0]["resource"]
    participant = next(i["value"] for i in patient["identifier"] if i["system"].endswith("/participant"))
    kept = {e["resource"]["resourceType"]: e["resource"]["id"] for e in sent.json()["entry"][3:]}
    specialist = (await create(client, "specialists", specialist_body()))["id"]
    answers = [{"link_id": k, "value": 1} for k in phq9([1] * 9)]
    ours = await client.post(
        "/peer/v1/assessments",
        json={
            "participant_id": participant,
            "instrument": "phq-9",
            "answers": answers,
            "administered_by": "peer-specialist",
            "specialist_id": specialist,
            "completed_at": at(1).isoformat(),
        },
    )
    assert ours.status_code == 201, ours.text
    system, value = HOSPITAL.split("|")
    recipient = {"name": "General Hospital", "identifier": {"type": "other", "system": system, "value": value}}
    consent = {"participant_id": participant, "recipient": recipient, "period": {"start": str(TODAY)}}
    assert (await client.post("/peer/v1/consents", json={**consent, "categories": ["assessments"]})).is_success
    hospital = await token_headers(client, database, program, "hospital", "system/*.rs", organization=HOSPITAL)
    response = fhir_id(program.identifier_system, "assessment", ours.json()["id"])
    seen = await client.get("/fhir/QuestionnaireResponse", params={"patient": patient["id"]}, headers=hospital)
    assert matched(seen.json()) == [f"QuestionnaireResponse/{response}"]
    observations = await client.get("/fhir/Observation", params={"patient": patient["id"]}, headers=hospital)
    assert len(matched(observations.json())) == 11
    assert f"Observation/{kept['Observation']}" not in matched(observations.json())
    for resource_type in ("Observation", "QuestionnaireResponse"):
        read = await client.get(f"/fhir/{resource_type}/{kept[resource_type]}", headers=hospital)
        assert read.status_code == 404
        assert (await client.get(f"/fhir/{resource_type}/{kept[resource_type]}")).status_code == 200


@pytest.fixture
def own_instruments(tmp_path, monkeypatch):
    """A program's own instrument (a copy of GAD-7 under another id) in PEERLINK_INSTRUMENTS_DIR."""
    from service.domain.instruments import HERE
    from service.settings import get_settings

    text = (HERE / "gad-7.toml").read_text().replace('id = "gad-7"', 'id = "gad-7-local"')
    (tmp_path / "gad-7-local.toml").write_text(text.replace("/Questionnaire/gad-7", "/Questionnaire/gad-7-local"))
    monkeypatch.setenv("PEERLINK_INSTRUMENTS_DIR", str(tmp_path))
    get_settings.cache_clear()
    yield
    monkeypatch.delenv("PEERLINK_INSTRUMENTS_DIR")
    get_settings.cache_clear()


async def test_a_programs_own_instrument_is_served_from_the_next_start(client, database, own_instruments):
    from datetime import UTC, datetime

    from service.fhir.projection import refresh_all_questionnaires

    assert matched(await _found(client, "Questionnaire", name="GAD7LOCAL")) == []
    async with database.transaction() as conn:  # what the gateway does at start-up
        assert await refresh_all_questionnaires(conn, datetime.now(UTC)) == 1
    assert matched(await _found(client, "Questionnaire", name="GAD7LOCAL")) == ["Questionnaire/gad-7-local-1.0.0"]
    async with database.transaction() as conn:  # unchanged: nothing stored again
        assert await refresh_all_questionnaires(conn, datetime.now(UTC)) == 0
