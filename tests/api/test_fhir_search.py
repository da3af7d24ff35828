"""FHIR search: every parameter of every type, modifiers, prefixes, OR/AND, _include/_revinclude,
result controls, keyset paging under concurrent writes, errors, POST _search."""

from __future__ import annotations

import base64
from datetime import timedelta
from typing import Any

import httpx
import orjson
import pytest

from mappings.ids import fhir_id
from service.fhir import search as search_engine
from service.fhir.search.execute import prepare
from service.fhir.search_params import SEARCH_PARAMS
from service.store import kept
from tests.api.test_fhir_assessments import ASSESSMENT_CASES
from tests.conftest import token_headers
from tests.factories import TODAY, World, at, create, encounter_body, participant_body

NOBODY = "00000000-0000-0000-0000-000000000000"

# (type, parameter) -> (a query that finds the World's resource, one that does not); {names} are FHIR ids.
CASES: dict[tuple[str, str], tuple[str, str]] = {
    ("Patient", "identifier"): ("https://hospital.example.org/mrn|MRN-1", "https://hospital.example.org/mrn|MRN-2"),
    ("Patient", "name"): ("rob", "zed"),
    ("Patient", "family"): ("EXA", "robin"),
    ("Patient", "given"): ("Robin", "Example"),
    ("Patient", "birthdate"): ("1990-04", "1991"),
    ("Patient", "gender"): ("female", "male"),
    ("Practitioner", "identifier"): ("https://peer.example.org/ids/specialist|{specialist_id}", "{participant_id}"),
    ("Practitioner", "name"): ("pee", "robin"),
    ("PractitionerRole", "identifier"): ("{specialist_id}", NOBODY),
    ("PractitionerRole", "practitioner"): ("Practitioner/{practitioner}", f"Practitioner/{NOBODY}"),
    ("PractitionerRole", "organization"): ("{organization}", NOBODY),
    ("PractitionerRole", "specialty"): (
        "http://nucc.org/provider-taxonomy|175T00000X",
        "http://other.example|175T00000X",
    ),
    ("Organization", "identifier"): ("https://peer.example.org/ids/program|{program_id}", "{program_id}x"),
    ("Organization", "name"): ("test peer", "peer"),
    ("Encounter", "identifier"): ("{encounter_id}", NOBODY),
    ("Encounter", "patient"): ("{patient}", NOBODY),
    ("Encounter", "subject"): ("Patient/{patient}", f"Patient/{NOBODY}"),
    ("Encounter", "date"): ("{encounter_day}", "lt{encounter_day}"),
    ("Encounter", "status"): ("finished", "planned"),
    ("Encounter", "type"): ("http://snomed.info/sct|410606002", "http://snomed.info/sct|H0038"),
    ("Encounter", "class"): ("VR", "AMB"),
    ("Encounter", "participant"): ("Practitioner/{practitioner}", "Practitioner/{patient}"),
    ("DocumentReference", "identifier"): ("https://peer.example.org/ids/note|{note_id}", "{encounter_id}"),
    ("DocumentReference", "patient"): ("Patient/{patient}", "{practitioner}"),
    ("DocumentReference", "subject"): ("{patient}", NOBODY),
    ("DocumentReference", "encounter"): ("{encounter}", NOBODY),
    ("DocumentReference", "date"): ("ge{yesterday}", "lt{yesterday}"),
    ("DocumentReference", "status"): ("current", "superseded"),
    ("DocumentReference", "type"): ("http://loinc.org|11506-3", "http://loinc.org|34109-9"),
    ("DocumentReference", "category"): ("clinical-note", "nope"),
    ("DocumentReference", "author"): ("{role}", "{practitioner}"),
    ("CareTeam", "identifier"): ("{participant_id}", NOBODY),
    ("CareTeam", "patient"): ("{patient}", NOBODY),
    ("CareTeam", "subject"): ("Patient/{patient}", f"Patient/{NOBODY}"),
    ("CareTeam", "status"): ("active", "inactive"),
    ("CareTeam", "category:missing"): ("true", "false"),
    ("CareTeam", "participant"): ("PractitionerRole/{role}", "Practitioner/{role}"),
    ("ServiceRequest", "identifier"): ("{referral_id}", NOBODY),
    ("ServiceRequest", "patient"): ("{patient}", NOBODY),
    ("ServiceRequest", "subject"): ("Patient/{patient}", f"Patient/{NOBODY}"),
    ("ServiceRequest", "status"): ("active", "completed"),
    ("ServiceRequest", "requester:missing"): ("false", "true"),
    ("ServiceRequest", "performer"): ("{organization}", NOBODY),
    ("ServiceRequest", "category"): ("social-connection", "housing"),
    ("ServiceRequest", "code"): ("http://snomed.info/sct|461481000124109", "461481000124110"),
    ("ServiceRequest", "authored"): ("{referral_day}", "gt{referral_day}"),
    ("Task", "identifier"): ("https://peer.example.org/ids/referral-task|{referral_id}", "{referral_id}x"),
    ("Task", "patient"): ("{patient}", NOBODY),
    ("Task", "subject"): ("Patient/{patient}", f"Patient/{NOBODY}"),
    ("Task", "status"): ("requested", "completed"),
    ("Task", "business-status"): ("2.0", "3.0"),
    ("Task", "owner"): ("Organization/{organization}", f"Organization/{NOBODY}"),
    ("Task", "focus"): ("{service_request}", NOBODY),
    ("Task", "requester:missing"): ("true", "false"),
    ("Task", "authored-on"): ("le{referral_day}", "ge{encounter_day}"),
    ("Task", "modified"): ("{referral_day}", "ne{referral_day}"),
    ("Goal", "identifier"): ("{goal_id}", NOBODY),
    ("Goal", "patient"): ("{patient}", NOBODY),
    ("Goal", "subject"): ("Patient/{patient}", f"Patient/{NOBODY}"),
    ("Goal", "lifecycle-status"): ("proposed", "active"),
    ("Goal", "category"): ("https://peer.example.org/ids/CodeSystem/goal-domain|housing", "employment"),
    ("Goal", "target-date"): ("gt{today}", "lt{today}"),
    ("Consent", "identifier"): ("{consent_id}", NOBODY),
    ("Consent", "patient"): ("Patient/{patient}", f"Patient/{NOBODY}"),
    ("Consent", "status"): ("active", "inactive"),
    ("Consent", "category"): ("http://loinc.org|59284-0", "http://loinc.org|64292-6"),
    ("Consent", "date"): ("ge{yesterday}", "lt{yesterday}"),
}
# the types a referral's clinical context brings (kept as a clinic sent them): cases against
# the context World below, {names} its served ids
CONTEXT_CASES: dict[tuple[str, str], tuple[str, str]] = {
    ("Condition", "identifier"): ("urn:example:clinic:conditions|C-1", "urn:example:clinic:conditions|C-2"),
    ("Condition", "patient"): ("{patient}", NOBODY),
    ("Condition", "subject"): ("Patient/{patient}", f"Patient/{NOBODY}"),
    ("Condition", "code"): ("http://snomed.info/sct|733423003", "http://snomed.info/sct|1"),
    ("Condition", "category"): ("health-concern", "problem-list-item"),
    ("Condition", "clinical-status"): ("active", "resolved"),
    ("Observation", "identifier"): ("O-1", "O-2"),
    ("Observation", "patient"): ("Patient/{patient}", NOBODY),
    ("Observation", "subject"): ("{patient}", NOBODY),
    ("Observation", "code"): ("http://loinc.org|88124-3", "http://loinc.org|88122-7"),
    ("Observation", "category"): ("survey", "laboratory"),
    ("Observation", "status"): ("final", "preliminary"),
    ("QuestionnaireResponse", "identifier"): ("Q-1", "Q-2"),
    ("QuestionnaireResponse", "patient"): ("{patient}", NOBODY),
    ("QuestionnaireResponse", "subject"): ("Patient/{patient}", NOBODY),
    ("QuestionnaireResponse", "status"): ("completed", "in-progress"),
    ("Coverage", "identifier"): ("urn:example:payer|M-1", "urn:example:payer|M-2"),
    ("Coverage", "patient"): ("{patient}", NOBODY),
    ("Coverage", "beneficiary"): ("Patient/{patient}", NOBODY),
    ("Coverage", "status"): ("active", "cancelled"),
    ("RelatedPerson", "identifier"): ("R-1", "R-2"),
    ("RelatedPerson", "patient"): ("{patient}", NOBODY),
    ("Immunization", "identifier"): ("I-1", "I-2"),
    ("Immunization", "patient"): ("Patient/{patient}", NOBODY),
    ("Immunization", "status"): ("completed", "not-done"),
    ("Immunization", "vaccine-code"): ("http://hl7.org/fhir/sid/cvx|20", "http://hl7.org/fhir/sid/cvx|21"),
}
ALL_PARAMS = [(t, name) for t, params in SEARCH_PARAMS.items() for name in params]
RESOURCE_KEYS = {
    "Patient": "patient",
    "Practitioner": "practitioner",
    "PractitionerRole": "role",
    "Organization": "organization",
    "Encounter": "encounter",
    "DocumentReference": "document",
    "CareTeam": "care_team",
    "ServiceRequest": "service_request",
    "Task": "task",
    "Goal": "goal",
    "Consent": "consent",
}


def _ids(program: Any, world: World) -> dict[str, str]:
    """The World's FHIR ids (and domain ids and days) by name, for the query templates."""
    system, w = program.identifier_system, world.ids

    def fid(kind: str, domain_id: str) -> str:
        return fhir_id(system, kind, domain_id)

    return {
        "patient": fid("participant", w["participant"]),
        "practitioner": fid("specialist", w["specialist"]),
        "role": fid("specialist-role", w["specialist"]),
        "organization": fid("program", program.id),
        "encounter": fid("encounter", w["encounter"]),
        "document": fid("note", w["note"]),
        "care_team": fid("care-team", w["participant"]),
        "service_request": fid("referral", w["referral"]),
        "task": fid("referral-task", w["referral"]),
        "goal": fid("goal", w["goal"]),
        "consent": fid("consent", w["consent"]),
        "participant_id": w["participant"],
        "specialist_id": w["specialist"],
        "encounter_id": w["encounter"],
        "note_id": w["note"],
        "referral_id": w["referral"],
        "goal_id": w["goal"],
        "consent_id": w["consent"],
        "program_id": program.id,
        "encounter_day": str(at(3).date()),
        "referral_day": str(at(5).date()),
        "today": str(TODAY),
        "yesterday": str(TODAY - timedelta(days=1)),
    }


async def search(client: httpx.AsyncClient, path: str, status: int = 200, **kwargs: Any) -> dict[str, Any]:
    response = await client.get(f"/fhir/{path}", **kwargs)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/fhir+json")
    body: dict[str, Any] = response.json()
    return body


def found(bundle: dict[str, Any], mode: str = "match") -> list[str]:
    """``Type/id`` of the entries in one search mode, in Bundle order."""
    return [
        f"{e['resource']['resourceType']}/{e['resource']['id']}"
        for e in bundle.get("entry", [])
        if e["search"]["mode"] == mode
    ]


@pytest.fixture
async def world(client: httpx.AsyncClient, program: Any) -> dict[str, str]:
    return _ids(program, await World(client).build())


# --- every parameter ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("resource_type", "param"), ALL_PARAMS, ids=[f"{t}.{p}" for t, p in ALL_PARAMS])
def test_every_parameter_has_a_case(resource_type, param):
    cases = {**CASES, **CONTEXT_CASES, **ASSESSMENT_CASES}  # the assessments' cases run in their own module
    assert (resource_type, param) in cases or (resource_type, f"{param}:missing") in cases


def test_no_case_for_a_parameter_that_does_not_exist():
    assert {(t, p.split(":")[0]) for t, p in {**CASES, **CONTEXT_CASES, **ASSESSMENT_CASES}} <= set(ALL_PARAMS)


async def test_every_parameter_of_every_type_finds_and_excludes(client, world):
    failures = []
    for (resource_type, param), (hit, miss) in CASES.items():
        me = f"{resource_type}/{world[RESOURCE_KEYS[resource_type]]}"
        for value, expected in ((hit, True), (miss, False)):
            response = await client.get(f"/fhir/{resource_type}", params={param: value.format(**world)})
            if response.status_code != 200:
                failures.append(f"{resource_type}?{param}={value}: {response.status_code} {response.text[:200]}")
            elif (me in found(response.json())) is not expected:
                failures.append(f"{resource_type}?{param}={value}: expected found={expected}")
    assert not failures, "\n".join(failures)


@pytest.fixture
async def context_world(client: httpx.AsyncClient) -> dict[str, str]:
    """A clinic's referral sent with one supporting resource of each searchable context type."""
    from tests.inbound.test_context_search import context_bundle

    response = await client.post(
        "/fhir", content=orjson.dumps(context_bundle()), headers={"Content-Type": "application/fhir+json"}
    )
    assert response.status_code == 200, response.text
    served = {e["resource"]["resourceType"]: e["resource"]["id"] for e in response.json()["entry"]}
    return {"patient": served["Patient"], **served}


async def test_every_context_parameter_finds_and_excludes(client, context_world):
    failures = []
    for (resource_type, param), (hit, miss) in CONTEXT_CASES.items():
        me = f"{resource_type}/{context_world[resource_type]}"
        for value, expected in ((hit, True), (miss, False)):
            response = await client.get(f"/fhir/{resource_type}", params={param: value.format(**context_world)})
            if response.status_code != 200:
                failures.append(f"{resource_type}?{param}={value}: {response.status_code} {response.text[:200]}")
            elif (me in found(response.json())) is not expected:
                failures.append(f"{resource_type}?{param}={value}: expected found={expected}")
    assert not failures, "\n".join(failures)


async def test_id_and_last_updated_apply_to_every_type(client, world):
    for resource_type, key in RESOURCE_KEYS.items():
        me = f"{resource_type}/{world[key]}"
        assert found(await search(client, f"{resource_type}?_id={world[key]},{NOBODY}")) == [me]
        assert found(await search(client, f"{resource_type}?_id={NOBODY}")) == []
        assert me not in found(await search(client, f"{resource_type}?_id:not={world[key]}"))
        assert me in found(await search(client, f"{resource_type}?_lastUpdated=ge{world['yesterday']}"))
        assert found(await search(client, f"{resource_type}?_lastUpdated=lt{world['yesterday']}")) == []


# --- modifiers, token and reference forms -----------------------------------------------------------------


async def test_modifiers(client, world):
    patient = f"Patient/{world['patient']}"
    # :exact is a whole-value match; plain string search is starts-with, case-insensitive; :contains
    assert found(await search(client, "Patient?name:exact=Robin")) == [patient]
    assert found(await search(client, "Patient?name:exact=Rob")) == []
    assert found(await search(client, "Patient?name=ROB")) == [patient]
    assert found(await search(client, "Patient?name=obi")) == []
    assert found(await search(client, "Patient?name:contains=obi")) == [patient]
    # :missing on every type of parameter
    assert found(await search(client, "Patient?gender:missing=false&birthdate:missing=false")) == [patient]
    assert found(await search(client, "Patient?name:missing=true")) == []
    assert found(await search(client, "Encounter?participant:missing=true")) == []
    assert found(await search(client, "Patient?_id:missing=true")) == []
    # :not on tokens: also finds resources without the element
    assert found(await search(client, "Encounter?status:not=planned")) == [f"Encounter/{world['encounter']}"]
    assert found(await search(client, "Encounter?status:not=finished")) == []
    assert found(await search(client, "Encounter?status:not=planned,finished")) == []
    assert found(await search(client, "CareTeam?category:not=anything")) == [f"CareTeam/{world['care_team']}"]
    # a reference's type modifier
    assert found(await search(client, f"Encounter?subject:Patient={world['patient']}")) != []
    assert found(await search(client, f"Encounter?participant:Practitioner={world['practitioner']}")) != []
    assert found(await search(client, f"Encounter?participant:Organization={world['practitioner']}")) == []
    # unsupported modifiers are named
    for query in (
        "Patient?name:text=x",
        "Encounter?status:exact=finished",
        "Encounter?date:not=2020",
        "Patient?_count:x=1",
    ):
        outcome = await search(client, query, 400)
        assert outcome["resourceType"] == "OperationOutcome"
        assert outcome["issue"][0]["expression"] == [query.split("?")[1].split("=")[0]]
    outcome = await search(client, "Patient?gender:missing=maybe", 400)
    assert outcome["issue"][0]["expression"] == ["gender:missing"]


async def test_token_and_reference_forms(client, world):
    encounter = f"Encounter/{world['encounter']}"
    snomed = "http://snomed.info/sct"
    assert found(await search(client, f"Encounter?type={snomed}|410606002")) == [encounter]
    assert found(await search(client, "Encounter?type=410606002")) == [encounter]
    assert found(await search(client, f"Encounter?type={snomed}|")) == [encounter]
    assert found(await search(client, "Encounter?type=http://snomed.info/s|")) == []
    assert found(await search(client, "Encounter?type=|410606002")) == []  # every coding has a system
    await search(client, "Encounter?type=a|b|c", 400)
    # absolute references to this server, ids of any type, malformed references
    base = "http://peerlink.test/fhir"
    assert found(await search(client, f"Encounter?patient={base}/Patient/{world['patient']}")) == [encounter]
    assert found(await search(client, f"Encounter?participant={world['role']}")) == [encounter]
    assert found(await search(client, f"Encounter?participant={world['role'][:-1]}")) == []
    await search(client, "Encounter?patient=not a reference", 400)


async def test_date_prefixes_and_precision(client, world):
    encounter = f"Encounter/{world['encounter']}"
    day = at(3).date()
    before, after = day - timedelta(days=1), day + timedelta(days=1)
    expectations = {
        f"{day}": True,
        f"eq{day}": True,
        f"ne{day}": False,
        f"ne{before}": True,
        f"gt{day}": False,
        f"gt{before}": True,
        f"lt{day}": False,
        f"lt{after}": True,
        f"ge{day}": True,
        f"ge{after}": False,
        f"le{day}": True,
        f"le{before}": False,
        f"{day.year}": True,
        f"{day.year - 1}": False,
        f"{day.year}-{day.month:02d}": True,
        f"{day}T15:00:00Z": True,
        f"{day}T15:00:01Z": False,
        f"{day}T15:00": True,
        f"{day}T17:00:00%2B02:00": True,  # the same instant in another zone
        f"{day}T17:00:00+02:00": True,  # an unencoded "+" arrives as a space
        f"gt{day}T14:59:59.999Z": True,
        f"lt{day}T15:00:00.001Z": True,
        f"lt{day}T15:00:00.000Z": False,
    }
    wrong = []
    for value, expected in expectations.items():
        if (encounter in found(await search(client, f"Encounter?date={value}"))) is not expected:
            wrong.append(value)
    assert not wrong
    for bad in ("sa2020", "2020-13", "yesterday", "2020-01-01T25:00", "2020-01-01T10:00:00+2"):
        outcome = await search(client, f"Encounter?date={bad}", 400)
        assert outcome["issue"][0]["expression"] == ["date"]


async def test_comma_is_or_and_a_repeated_parameter_is_and(client, world):
    encounter = f"Encounter/{world['encounter']}"
    assert found(await search(client, "Encounter?status=planned,finished")) == [encounter]
    assert found(await search(client, "Encounter?status=planned&status=finished")) == []
    assert found(await search(client, "Encounter?status=finished&type=video&class=VR")) == [encounter]
    assert found(await search(client, "Encounter?type=video&type=H0038")) == [encounter]
    assert found(await search(client, "Encounter?type=video&type=phone")) == []
    day = at(3).date()
    assert found(await search(client, f"Encounter?date=ge{day}&date=lt{day + timedelta(days=1)}")) == [encounter]
    assert found(await search(client, f"Encounter?date=gt{day}&date=lt{day}")) == []
    assert found(await search(client, "Patient?name=zed,exa")) == [f"Patient/{world['patient']}"]
    # escaped commas are part of the value
    assert found(await search(client, "Patient?name=robin\\,x")) == []
    # empty values are ignored
    assert found(await search(client, "Encounter?status=&type=")) == [encounter]


# --- _include and _revinclude ----------------------------------------------------------------------------


async def test_include_and_revinclude(client, world):
    encounter, patient = f"Encounter/{world['encounter']}", f"Patient/{world['patient']}"
    document = f"DocumentReference/{world['document']}"
    bundle = await search(client, f"Encounter?patient={world['patient']}&_revinclude=DocumentReference:encounter")
    assert found(bundle) == [encounter]
    assert found(bundle, "include") == [document]
    assert bundle["total"] == 1
    assert [e["fullUrl"] for e in bundle["entry"]] == [f"http://peerlink.test/fhir/{f}" for f in (encounter, document)]

    bundle = await search(client, "Encounter?_include=Encounter:patient&_include=Encounter:subject")
    assert found(bundle, "include") == [patient]  # once, though two parameters lead to it
    bundle = await search(client, "Encounter?_include=Encounter:participant:PractitionerRole")
    assert found(bundle, "include") == [f"PractitionerRole/{world['role']}"]
    bundle = await search(client, "Encounter?_include=Encounter:participant")
    assert sorted(found(bundle, "include")) == [
        f"Practitioner/{world['practitioner']}",
        f"PractitionerRole/{world['role']}",
    ]
    bundle = await search(client, "DocumentReference?_include=DocumentReference:encounter")
    assert found(bundle, "include") == [encounter]
    bundle = await search(client, "Task?_include=Task:focus&_include=Task:owner")
    assert sorted(found(bundle, "include")) == [
        f"Organization/{world['organization']}",
        f"ServiceRequest/{world['service_request']}",
    ]
    bundle = await search(client, "ServiceRequest?_include=ServiceRequest:patient&_revinclude=Task:focus")
    assert found(bundle) == [f"ServiceRequest/{world['service_request']}"]
    assert found(bundle, "include") == [patient, f"Task/{world['task']}"]
    bundle = await search(client, "CareTeam?_include=CareTeam:participant")
    assert found(bundle, "include") == [f"PractitionerRole/{world['role']}"]
    # a resource that is a match is not repeated as an include
    bundle = await search(
        client, "Patient?_revinclude=Goal:patient&_revinclude=Consent:patient&_revinclude=Goal:subject"
    )
    assert found(bundle) == [patient]
    assert found(bundle, "include") == [f"Goal/{world['goal']}", f"Consent/{world['consent']}"]
    # nothing to include: no include entries
    assert found(await search(client, "Patient?_revinclude=Encounter:participant"), "include") == []

    for bad in ("Patient:patient", "Encounter:status", "Encounter", "Encounter:patient:Nope", "Encounter:nope"):
        outcome = await search(client, f"Encounter?_include={bad}", 400)
        assert outcome["issue"][0]["expression"] == ["_include"]
    await search(client, "Encounter?_revinclude=Nope:encounter", 400)
    await search(client, "Encounter?_include:iterate=Encounter:patient", 400)


# --- result controls --------------------------------------------------------------------------------------


async def _sessions(client: httpx.AsyncClient, world: dict[str, str], days: list[int]) -> list[str]:
    """More sessions of the World's participant, ``days`` ago; their Encounter ids in that order."""
    ids = []
    for days_ago in days:
        body = encounter_body(world["participant_id"], world["specialist_id"], start=at(days_ago).isoformat())
        body["end"] = (at(days_ago) + timedelta(minutes=30)).isoformat()
        record = await create(client, "encounters", body)
        ids.append(f"Encounter/{fhir_id('https://peer.example.org/ids', 'encounter', record['id'])}")
    return ids


async def test_count_sort_summary_and_elements(client, world):
    first = f"Encounter/{world['encounter']}"  # 3 days ago
    later = await _sessions(client, world, [10, 1, 7])
    by_date = [later[0], later[2], first, later[1]]

    assert found(await search(client, "Encounter?_sort=date")) == by_date
    assert found(await search(client, "Encounter?_sort=-date")) == by_date[::-1]
    assert found(await search(client, "Encounter?_sort=_lastUpdated")) == [first, *later]
    assert found(await search(client, "Encounter?_sort=-_lastUpdated")) == [*later[::-1], first]
    assert found(await search(client, "Encounter")) == [first, *later]  # default: the order they were stored

    bundle = await search(client, "Encounter?_sort=date&_count=2")
    assert found(bundle) == by_date[:2] and bundle["total"] == 4
    assert [link["relation"] for link in bundle["link"]] == ["self", "next"]
    assert (await search(client, "Encounter?_count=0"))["total"] == 4
    assert "entry" not in await search(client, "Encounter?_count=0")
    assert len(found(await search(client, "Encounter?_count=9999"))) == 4  # capped, not refused
    await search(client, "Encounter?_count=-1", 400)
    await search(client, "Encounter?_count=2&_count=3", 400)

    count = await search(client, "Encounter?_summary=count&status=finished")
    assert count["total"] == 4 and "entry" not in count and count["type"] == "searchset"
    await search(client, "Encounter?_summary=text", 400)
    assert "total" not in await search(client, "Encounter?_total=none")

    bundle = await search(client, "Encounter?_elements=status,class&_count=1&_include=Encounter:patient")
    resource = bundle["entry"][0]["resource"]
    assert set(resource) == {"resourceType", "id", "meta", "status", "class"}
    assert {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "SUBSETTED"}.items() <= (
        resource["meta"]["tag"][0].items()
    )
    assert resource["meta"]["versionId"] == "1"
    included = bundle["entry"][1]["resource"]
    assert included["resourceType"] == "Patient" and "name" in included  # includes are whole
    await search(client, "Encounter?_elements=status,bad%20name", 400)

    # _sort=date means each type's date parameter; types without one refuse it
    assert found(await search(client, "Task?_sort=-date")) == [f"Task/{world['task']}"]
    assert found(await search(client, "Patient?_sort=birthdate")) == [f"Patient/{world['patient']}"]
    for bad in ("Practitioner?_sort=date", "Encounter?_sort=status", "Encounter?_sort=date,_lastUpdated"):
        assert (await search(client, bad, 400))["issue"][0]["expression"] == ["_sort"]


# --- paging ---------------------------------------------------------------------------------------------


def _patient_id(program: Any, record_id: str) -> str:
    return f"Patient/{fhir_id(program.identifier_system, 'participant', record_id)}"


@pytest.mark.parametrize("sort", ["", "_lastUpdated", "-_lastUpdated", "date", "-date"])
async def test_paging_skips_and_repeats_nothing_while_records_are_written(client, program, sort):
    records = []
    for n in range(7):
        body = participant_body(birth_date=f"19{80 + n % 4}-0{1 + n}-15", identifiers=[])
        records.append((await create(client, "participants", body))["id"])
    existing = {_patient_id(program, r) for r in records}

    url = "/fhir/Patient?_count=3" + (f"&_sort={sort}" if sort else "")
    seen: list[str] = []
    pages = 0
    while url:
        bundle = await search(client, url.removeprefix("http://peerlink.test/fhir/").removeprefix("/fhir/"))
        page = found(bundle)
        seen += page
        pages += 1
        assert bundle["link"][0]["relation"] == "self" and bundle["link"][0]["url"].startswith("http://peerlink.test/")
        # between pages: a new record, and an update of one not yet seen and of one already seen
        new = await create(client, "participants", participant_body(birth_date="1985-06-15", identifiers=[]))
        existing_unseen = [r for r in records if _patient_id(program, r) not in seen]
        for record_id in [*existing_unseen[:1], records[0]]:
            patch = {"name": {"family": f"Renamed{pages}", "given": ["Sam"]}}
            changed = await client.patch(f"/peer/v1/participants/{record_id}", json=patch)
            assert changed.status_code == 200, changed.text
        records_seen_new = _patient_id(program, new["id"])
        assert records_seen_new  # created during paging: may or may not appear
        url = next((link["url"] for link in bundle["link"] if link["relation"] == "next"), "")
        assert pages < 10
    old = [s for s in seen if s in existing]
    assert sorted(old) == sorted(existing), "an existing record was skipped"
    assert len(seen) == len(set(seen)), "a record was repeated"


async def test_next_links_keep_the_query_and_garbage_cursors_are_refused(client, world):
    await _sessions(client, world, [10, 1])
    bundle = await search(client, "Encounter?status=finished&_count=2&_sort=-date")
    next_url = next(link["url"] for link in bundle["link"] if link["relation"] == "next")
    assert next_url.startswith("http://peerlink.test/fhir/Encounter?")
    assert "status=finished" in next_url and "_sort=-date" in next_url and "_cursor=" in next_url
    page_two = await search(client, next_url.removeprefix("http://peerlink.test/fhir/"))
    assert len(found(page_two)) == 1 and "next" not in {lk["relation"] for lk in page_two["link"]}
    assert page_two["link"][0]["url"] == next_url

    cursor = next_url.split("_cursor=")[1]
    for garbage in ("abc", "!!!", base64.urlsafe_b64encode(b'{"s":"-date","k":null,"p":1,"n":1}').decode(), "x" * 500):
        outcome = await search(client, f"Encounter?_sort=-date&_cursor={garbage}", 400)
        assert outcome["resourceType"] == "OperationOutcome"
        assert outcome["issue"][0]["expression"] == ["_cursor"]
    # a cursor only fits the sort it was issued for
    await search(client, f"Encounter?_sort=date&_cursor={cursor}", 400)
    forged = base64.urlsafe_b64encode(orjson.dumps({"s": "-date", "k": "2020-01-01T00:00:00+00:00", "p": -1, "n": 1}))
    await search(client, f"Encounter?_sort=-date&_cursor={forged.decode()}", 400)


async def test_later_pages_repeat_the_first_pages_total(client, world):
    await _sessions(client, world, [10, 9, 8])  # four Encounters with the World's
    first = await search(client, "Encounter?status=finished&_count=3")
    assert first["total"] == 4 and len(found(first)) == 3
    next_url = next(link["url"] for link in first["link"] if link["relation"] == "next")
    await _sessions(client, world, [7])  # written while paging: the next page finds it, the total stays
    second = await search(client, next_url.removeprefix("http://peerlink.test/fhir/"))
    assert second["total"] == 4 and len(found(second)) == 2
    fresh = await search(client, "Encounter?status=finished&_count=3")
    assert fresh["total"] == 5  # a new search counts again
    uncounted = await search(client, "Encounter?status=finished&_count=3&_total=none")
    later = next(link["url"] for link in uncounted["link"] if link["relation"] == "next")
    assert "total" not in await search(client, later.removeprefix("http://peerlink.test/fhir/"))


async def test_a_search_runs_its_kept_statements(client, database, program, world):
    """One statement per query shape, run with each search's values (on PostgreSQL on the driver)."""
    query = search_engine.parse("Encounter", [("status", "finished"), ("_count", "1")], base="http://x")
    built, _ = prepare(program.id, query, None)
    # the shape's statements are shared by every search of its shape in this process (another test's, or
    # the other backend's): a first page that overflowed there would count with its page (``counted``)
    built.overflowed = False
    bundle = await search(client, "Encounter?status=finished&_count=1")
    assert bundle["total"] >= 1 and len(found(bundle)) == 1
    assert prepare(program.id, query, None)[0] is built  # the same statements served the request
    summary = search_engine.parse("Encounter", [("status", "finished"), ("_summary", "count")], base="http://x")
    counting, _ = prepare(program.id, summary, None)
    counted = await search(client, "Encounter?status=finished&_summary=count")
    assert counted["total"] == bundle["total"]
    assert prepare(program.id, summary, None)[0] is counting
    driver = "sqlite" if database.is_sqlite else "asyncpg"
    if database.loop_reader is not None or not database.is_sqlite:
        assert kept._compiled[driver].get(built.rows) is not None  # compiled once, run on the driver
        assert kept._compiled[driver].get(counting.count) is not None


async def test_a_shape_whose_first_pages_overflow_counts_with_its_page(client, program, world):
    """After a first page with more matches than it holds, that shape's next first page counts in the
    page's own statement: the same total, the same entries, one statement."""
    await _sessions(client, world, [10, 9, 8])
    query = search_engine.parse("Encounter", [("status", "finished"), ("_count", "2")], base="http://x")
    built, _ = prepare(program.id, query, None)
    built.overflowed = False
    first = await search(client, "Encounter?status=finished&_count=2")
    assert built.overflowed is True
    again = await search(client, "Encounter?status=finished&_count=2")  # through ``counted``
    assert again["total"] == first["total"] == 4 and found(again) == found(first)
    none = await search(client, "Encounter?status=cancelled&_count=2")  # same shape, no match at all
    assert none["total"] == 0 and "entry" not in none and built.overflowed is False
    one = await search(client, "Encounter?status=finished&_count=2&_id=" + world["encounter"])
    assert one["total"] == 1


# --- errors and handling -------------------------------------------------------------------------------------


async def test_unknown_parameters_are_refused_unless_handling_is_lenient(client, world):
    outcome = await search(client, "Patient?nickname=x&gender=female", 400)
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["code"] == "invalid" and outcome["issue"][0]["expression"] == ["nickname"]
    assert "nickname" in outcome["issue"][0]["diagnostics"]

    lenient = {"Prefer": "handling=lenient"}
    bundle = await search(client, "Patient?nickname=x&gender=female&name:text=y", headers=lenient)
    assert found(bundle) == [f"Patient/{world['patient']}"]
    outcomes = [e for e in bundle["entry"] if e["search"]["mode"] == "outcome"]
    assert len(outcomes) == 1
    assert outcomes[0]["resource"]["issue"][0]["expression"] == ["nickname", "name:text"]
    assert "nickname" not in bundle["link"][0]["url"] and "gender=female" in bundle["link"][0]["url"]
    # strict is the default, and lenient does not excuse bad values
    await search(client, "Patient?nickname=x", 400, headers={"Prefer": "handling=strict"})
    await search(client, "Patient?birthdate=soon", 400, headers=lenient)
    # unknown types are a 404
    assert (await search(client, "Medication?code=x", 404))["resourceType"] == "OperationOutcome"


async def test_post_search_equals_get(client, world):
    query = f"patient={world['patient']}&status=finished,planned&_revinclude=DocumentReference:encounter&_count=5"
    got = await client.get(f"/fhir/Encounter?{query}")
    posted = await client.post(
        "/fhir/Encounter/_search", content=query, headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert got.status_code == posted.status_code == 200
    assert posted.json() == got.json()
    assert found(posted.json(), "include") == [f"DocumentReference/{world['document']}"]
    # parameters may also sit in the query string of the POST
    split = await client.post(
        f"/fhir/Encounter/_search?patient={world['patient']}",
        content="status=finished,planned&_revinclude=DocumentReference:encounter&_count=5",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert found(split.json()) == found(got.json())
    assert (await client.post("/fhir/Encounter/_search")).json()["total"] == 1
    refused = await client.post("/fhir/Encounter/_search", json={"status": "finished"})
    assert refused.status_code == 415 and refused.json()["resourceType"] == "OperationOutcome"
    bad = await client.post(
        "/fhir/Encounter/_search", content="nickname=x", headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert bad.status_code == 400 and bad.json()["issue"][0]["expression"] == ["nickname"]


async def test_searches_stay_inside_the_program(client, database, world):
    from service.domain import ProgramFields
    from service.records.programs import create_program

    async with database.transaction() as conn:
        other_program = await create_program(
            conn, ProgramFields(code="other", name="Other", identifier_system="https://other.example/ids")
        )
    other = await token_headers(client, database, other_program, "other-program")
    assert (await search(client, "Patient", headers=other))["total"] == 0
    assert (await search(client, f"Encounter?patient={world['patient']}", headers=other))["total"] == 0
    assert found(await search(client, "Organization", headers=other)) != found(await search(client, "Organization"))
