"""The sandbox's FHIR REST behaviour, in process: seed, read/vread, search, create, conditional
create, update, transaction, errors, CapabilityStatement."""

from __future__ import annotations

import asyncio
from urllib.parse import parse_qsl, urlsplit

import pytest

from mappings.models import validate
from service.cli.seed import _FAMILY, _GIVEN, HOSPITAL_MRN_SYSTEM
from service.domain.common import _npi
from service.sandbox import seed as sandbox_seed
from tests.sandbox.support import FHIR_JSON, ROOT

MRN = sandbox_seed.HOSPITAL_MRN_SYSTEM


def note(patient_id: str, value: str = "n-1", **extra):
    return {
        "resourceType": "DocumentReference",
        "identifier": [{"system": "https://peer.example.org/notes", "value": value}],
        "status": "current",
        "subject": {"reference": f"Patient/{patient_id}"},
        "content": [{"attachment": {"contentType": "text/plain", "data": "aGVsbG8="}}],
        **extra,
    }


async def patient_id(ehr, index: int = 0):
    return ehr.sandbox.index.patient_ids[index]


# --- seed ------------------------------------------------------------------------------------------------
async def test_seed_counts_and_no_referrals(ehr):
    counts = ehr.sandbox.store.counts()
    assert counts == {
        "Patient": 50,
        "Practitioner": 7,
        "Organization": 3,
        "Encounter": 25,
        "DocumentReference": 0,
        "CareTeam": 0,
        "ServiceRequest": 0,
        "Task": 0,
        "QuestionnaireResponse": 0,
        "Observation": 0,
        "Questionnaire": 0,
    }


async def test_seed_is_deterministic_and_valid(make_sandbox):
    one, two = make_sandbox(), make_sandbox()
    for resource_type in ("Patient", "Practitioner", "Organization", "Encounter"):
        first = [v.resource for v in one.sandbox.store.live(resource_type)]
        assert first == [v.resource for v in two.sandbox.store.live(resource_type)]
        for resource in first:
            validate(resource)
    other = make_sandbox(seed=9)
    assert [v.resource for v in other.sandbox.store.live("Patient")] != [
        v.resource for v in one.sandbox.store.live("Patient")
    ]


async def test_seeded_patients_match_the_gateway_demo_participants(ehr):
    """The first twelve patients are the gateway demo seed's participants, by MRN, name and system."""
    assert MRN == HOSPITAL_MRN_SYSTEM
    patients = [v.resource for v in ehr.sandbox.store.live("Patient")]
    for i in range(12):
        resource = patients[i]
        assert resource["identifier"][0]["system"] == HOSPITAL_MRN_SYSTEM
        assert resource["identifier"][0]["value"] == f"SBX{100000 + i}"
        assert resource["name"][0]["family"] == _FAMILY[i]
        assert resource["name"][0]["given"] == [_GIVEN[i]]
    mrns = {p["identifier"][0]["value"] for p in patients}
    assert len(mrns) == 50


async def test_well_known_organizations_and_valid_npis(ehr):
    response = await ehr.get("/Organization", params={"identifier": "|".join(sandbox_seed.PEER_PROGRAM_IDENTIFIER)})
    assert response.json()["entry"][0]["resource"]["id"] == sandbox_seed.PEER_PROGRAM_ORG_ID
    for resource_type in ("Organization", "Practitioner"):
        for version in ehr.sandbox.store.live(resource_type):
            for ident in version.resource["identifier"]:
                if ident["system"] == sandbox_seed.NPI_SYSTEM:
                    assert _npi(ident["value"]) == ident["value"]


# --- read, vread -----------------------------------------------------------------------------------------
async def test_read_and_vread_with_etag(ehr):
    pid = await patient_id(ehr)
    response = await ehr.get(f"/Patient/{pid}")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(FHIR_JSON)
    assert response.headers["etag"] == 'W/"1"'
    assert "last-modified" in response.headers
    assert response.json()["meta"]["versionId"] == "1"
    assert (await ehr.get(f"/Patient/{pid}/_history/1")).json()["id"] == pid
    missing = await ehr.get("/Patient/nope")
    assert missing.status_code == 404
    assert missing.json()["resourceType"] == "OperationOutcome"
    assert missing.json()["issue"][0]["code"] == "not-found"
    assert (await ehr.get(f"/Patient/{pid}/_history/7")).status_code == 404
    assert (await ehr.get("/Observation/x")).status_code == 404
    assert (await ehr.get(f"/Patient/{pid}/_history")).status_code == 405


async def test_delete_then_read_is_gone(ehr):
    created = (await ehr.post("/DocumentReference", note(await patient_id(ehr)))).json()
    headers = await ehr.headers()
    deleted = await ehr.http.delete(f"{ehr.fhir}/DocumentReference/{created['id']}", headers=headers)
    assert deleted.status_code == 204
    assert (await ehr.get(f"/DocumentReference/{created['id']}")).status_code == 410
    assert (await ehr.get(f"/DocumentReference/{created['id']}/_history/1")).status_code == 200
    assert (await ehr.get("/DocumentReference", params={"_id": created["id"]})).json()["total"] == 0


# --- search ----------------------------------------------------------------------------------------------
async def test_search_by_identifier_forms(ehr):
    for value in (f"{MRN}|SBX100003", "SBX100003", f"{MRN}|SBX100003,{MRN}|SBX999999"):
        bundle = (await ehr.get("/Patient", params={"identifier": value})).json()
        assert bundle["resourceType"] == "Bundle" and bundle["type"] == "searchset"
        assert bundle["total"] == 1, value
        assert bundle["entry"][0]["fullUrl"].startswith(f"{ROOT}/fhir/Patient/")
        assert bundle["entry"][0]["search"]["mode"] == "match"
    assert (await ehr.get("/Patient", params={"identifier": "urn:other|SBX100003"})).json()["total"] == 0
    assert (await ehr.get("/Patient", params={"identifier": f"{MRN}|"})).json()["total"] == 50
    pid = await patient_id(ehr, 4)
    assert (await ehr.get("/Patient", params={"_id": pid})).json()["entry"][0]["resource"]["id"] == pid
    assert (await ehr.get("/Patient", params={"name": "quin"})).json()["total"] >= 1
    assert (await ehr.get("/Patient", params={"gender": "unknown", "_summary": "count"})).json().get("entry") is None


async def test_search_references_and_status(ehr):
    pid = await patient_id(ehr, 2)
    for params in ({"patient": pid}, {"subject": f"Patient/{pid}"}, {"patient": f"{ROOT}/fhir/Patient/{pid}"}):
        bundle = (await ehr.get("/Encounter", params=params)).json()
        assert bundle["total"] == 1, params
    assert (await ehr.get("/Encounter", params={"status": "finished"})).json()["total"] == 25
    assert (await ehr.get("/Encounter", params={"status": "planned"})).json()["total"] == 0
    both = await ehr.get("/Encounter", params=[("status", "finished"), ("patient", pid)])
    assert both.json()["total"] == 1


async def test_count_and_next_links_page_through_everything(ehr):
    seen: list[str] = []
    response = await ehr.get("/Patient", params={"_count": "20"})
    pages = 0
    while True:
        bundle = response.json()
        pages += 1
        assert bundle["total"] == 50
        seen += [e["resource"]["id"] for e in bundle["entry"]]
        following = [link["url"] for link in bundle["link"] if link["relation"] == "next"]
        if not following:
            break
        url = urlsplit(following[0])
        assert f"{url.scheme}://{url.netloc}" == ROOT
        response = await ehr.http.get(url.path, params=parse_qsl(url.query), headers=await ehr.headers())
    assert pages == 3
    assert len(seen) == len(set(seen)) == 50


async def test_last_updated_prefixes_for_polling(ehr):
    first = ehr.sandbox.clinic_referral()
    first_task = (await ehr.get(f"/Task/{first.task_id}")).json()
    stamp = first_task["meta"]["lastUpdated"]
    second = ehr.sandbox.clinic_referral()
    owner = f"Organization/{sandbox_seed.PEER_PROGRAM_ORG_ID}"

    async def ids(**params):
        bundle = (await ehr.get("/Task", params={"owner": owner, **params})).json()
        return {e["resource"]["id"] for e in bundle.get("entry", [])}

    assert await ids() == {first.task_id, second.task_id}
    assert await ids(_lastUpdated=f"gt{stamp}") == {second.task_id}
    assert await ids(_lastUpdated=f"ge{stamp}") == {first.task_id, second.task_id}
    assert await ids(_lastUpdated=f"lt{stamp}") == set()
    assert await ids(_lastUpdated=f"le{stamp}") == {first.task_id}
    assert await ids(_lastUpdated="gt2025-01-02") == {first.task_id, second.task_id}
    assert await ids(_lastUpdated="lt2025") == set()
    sorted_desc = (await ehr.get("/Task", params={"_sort": "-_lastUpdated"})).json()
    assert [e["resource"]["id"] for e in sorted_desc["entry"]] == [second.task_id, first.task_id]


async def test_include_task_focus(ehr):
    referral = ehr.sandbox.clinic_referral()
    bundle = (
        await ehr.get(
            "/Task",
            params={"owner": f"Organization/{sandbox_seed.PEER_PROGRAM_ORG_ID}", "_include": "Task:focus"},
        )
    ).json()
    modes = {(e["resource"]["resourceType"], e["search"]["mode"]) for e in bundle["entry"]}
    assert modes == {("Task", "match"), ("ServiceRequest", "include")}
    assert bundle["total"] == 1
    assert bundle["entry"][1]["resource"]["id"] == referral.service_request_id


async def test_search_errors_and_lenient_handling(ehr):
    unknown = await ehr.get("/Patient", params={"shoe-size": "44"})
    assert unknown.status_code == 400
    assert "shoe-size" in unknown.json()["issue"][0]["diagnostics"]
    lenient = await ehr.get("/Patient", params={"shoe-size": "44"}, headers={"Prefer": "handling=lenient"})
    assert lenient.status_code == 200 and lenient.json()["total"] == 50
    assert (await ehr.get("/Task", params={"_lastUpdated": "gtyesterday"})).status_code == 400
    assert (await ehr.get("/Task", params={"_include": "Task:nothing"})).status_code == 400
    assert (await ehr.get("/Patient", params={"_count": "-1"})).status_code == 400
    assert (await ehr.get("/Patient", params={"_format": "xml"})).status_code == 406
    assert (await ehr.get("/Patient", headers={"Accept": "application/fhir+xml"})).status_code == 406


async def test_post_search(ehr):
    headers = {**await ehr.headers(), "Content-Type": "application/x-www-form-urlencoded"}
    response = await ehr.http.post(f"{ehr.fhir}/Patient/_search", content="identifier=SBX100001", headers=headers)
    assert response.json()["total"] == 1


# --- create, conditional create, update ------------------------------------------------------------------
async def test_create_answers_201_location_etag(ehr):
    pid = await patient_id(ehr)
    response = await ehr.post("/DocumentReference", note(pid))
    assert response.status_code == 201
    body = response.json()
    assert response.headers["location"] == f"{ROOT}/fhir/DocumentReference/{body['id']}/_history/1"
    assert response.headers["etag"] == 'W/"1"'
    assert body["meta"]["versionId"] == "1"
    minimal = await ehr.post("/DocumentReference", note(pid, "n-2"), headers={"Prefer": "return=minimal"})
    assert minimal.status_code == 201 and minimal.content == b""


async def test_create_refusals(ehr):
    pid = await patient_id(ehr)
    wrong_type = await ehr.post("/DocumentReference", {"resourceType": "Patient"})
    assert wrong_type.status_code == 400
    invalid = await ehr.post("/DocumentReference", note(pid, status="bogus"))
    assert invalid.status_code == 422
    assert "status" in invalid.json()["issue"][0]["diagnostics"]
    dangling = await ehr.post("/DocumentReference", note("no-such-patient"))
    assert dangling.status_code == 422
    assert "Patient/no-such-patient" in dangling.json()["issue"][0]["diagnostics"]
    headers = {**await ehr.headers(), "Content-Type": "text/plain"}
    assert (await ehr.http.post(f"{ehr.fhir}/DocumentReference", content=b"{}", headers=headers)).status_code == 415
    headers["Content-Type"] = FHIR_JSON
    assert (await ehr.http.post(f"{ehr.fhir}/DocumentReference", content=b"{", headers=headers)).status_code == 400
    assert ehr.sandbox.store.counts()["DocumentReference"] == 0


async def test_conditional_create(ehr):
    pid = await patient_id(ehr)
    condition = {"If-None-Exist": "identifier=https://peer.example.org/notes|n-1"}
    first = await ehr.post("/DocumentReference", note(pid), headers=condition)
    assert first.status_code == 201
    again = await ehr.post("/DocumentReference", note(pid), headers=condition)
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert ehr.sandbox.store.counts()["DocumentReference"] == 1
    await ehr.post("/DocumentReference", note(pid, "n-1"))  # a second one, unconditionally
    several = await ehr.post("/DocumentReference", note(pid), headers=condition)
    assert several.status_code == 412
    assert several.json()["issue"][0]["code"] == "conflict"


async def test_conditional_create_switched_off_creates_duplicates(make_sandbox):
    ehr = make_sandbox(conditional_create=False)
    condition = {"If-None-Exist": "identifier=https://peer.example.org/notes|n-1"}
    for _ in range(2):
        assert (await ehr.post("/DocumentReference", note(await patient_id(ehr)), headers=condition)).status_code == 201
    assert ehr.sandbox.store.counts()["DocumentReference"] == 2


async def test_update_with_if_match_and_update_as_create(ehr):
    pid = await patient_id(ehr)
    created = (await ehr.post("/DocumentReference", note(pid))).json()
    url = f"/DocumentReference/{created['id']}"
    changed = {**created, "status": "entered-in-error"}
    ok = await ehr.put(url, changed, headers={"If-Match": 'W/"1"'})
    assert ok.status_code == 200 and ok.headers["etag"] == 'W/"2"'
    stale = await ehr.put(url, changed, headers={"If-Match": 'W/"1"'})
    assert stale.status_code == 412
    assert (await ehr.put(url, changed, headers={"If-Match": "garbage"})).status_code == 400
    assert (await ehr.put(url, {**changed, "id": "other"})).status_code == 400
    as_create = await ehr.put("/DocumentReference/chosen-id", {**note(pid), "id": "chosen-id"})
    assert as_create.status_code == 201
    assert as_create.headers["location"].endswith("/DocumentReference/chosen-id/_history/1")
    absent = await ehr.put(
        "/DocumentReference/other-id", {**note(pid), "id": "other-id"}, headers={"If-Match": 'W/"1"'}
    )
    assert absent.status_code == 412
    assert (await ehr.get(f"{url}/_history/1")).json()["status"] == "current"


async def test_last_updated_strictly_increases(ehr):
    pid = await patient_id(ehr)
    stamps = [
        (await ehr.post("/DocumentReference", note(pid, f"n-{i}"))).json()["meta"]["lastUpdated"] for i in range(5)
    ]
    assert stamps == sorted(stamps) and len(set(stamps)) == 5


# --- transactions -----------------------------------------------------------------------------------------
def referral_bundle(patient_ref: str = "urn:uuid:0a1b", with_patient: bool = True, task_extra=None):
    entries = []
    if with_patient:
        entries.append(
            {
                "fullUrl": "urn:uuid:0a1b",
                "resource": {
                    "resourceType": "Patient",
                    "identifier": [{"system": MRN, "value": "SBX900001"}],
                    "name": [{"family": "Newperson"}],
                },
                "request": {"method": "POST", "url": "Patient", "ifNoneExist": f"identifier={MRN}|SBX900001"},
            }
        )
    entries += [
        {
            "fullUrl": "urn:uuid:5r",
            "resource": {
                "resourceType": "ServiceRequest",
                "status": "active",
                "intent": "order",
                "subject": {"reference": patient_ref},
            },
            "request": {"method": "POST", "url": "ServiceRequest"},
        },
        {
            "fullUrl": "urn:uuid:7t",
            "resource": {
                "resourceType": "Task",
                "status": "requested",
                "intent": "order",
                "focus": {"reference": "urn:uuid:5r"},
                "for": {"reference": patient_ref},
                **(task_extra or {}),
            },
            "request": {"method": "POST", "url": "Task"},
        },
    ]
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


async def test_transaction_resolves_urn_uuid_references(ehr):
    response = await ehr.post("", referral_bundle())
    assert response.status_code == 200, response.text
    bundle = response.json()
    assert bundle["type"] == "transaction-response"
    statuses = [e["response"]["status"] for e in bundle["entry"]]
    assert statuses == ["201 Created"] * 3
    patient, order, task = (e["resource"] for e in bundle["entry"])
    assert order["subject"]["reference"] == f"Patient/{patient['id']}"
    assert task["focus"]["reference"] == f"ServiceRequest/{order['id']}"
    assert bundle["entry"][2]["response"]["location"] == f"Task/{task['id']}/_history/1"
    assert bundle["entry"][2]["response"]["etag"] == 'W/"1"'
    # the same bundle again: the Patient's ifNoneExist finds the one created
    again = (await ehr.post("", referral_bundle())).json()
    assert again["entry"][0]["response"]["status"] == "200 OK"
    assert again["entry"][0]["resource"]["id"] == patient["id"]
    assert again["entry"][1]["resource"]["subject"]["reference"] == f"Patient/{patient['id']}"
    assert ehr.sandbox.store.counts()["Patient"] == 51


async def test_transaction_is_all_or_nothing(ehr, make_sandbox):
    before = ehr.sandbox.store.counts()
    broken = referral_bundle(task_extra={"status": "not-a-status"})
    response = await ehr.post("", broken)
    assert response.status_code == 422
    assert "Bundle.entry[2]" in response.json()["issue"][0]["diagnostics"]
    dangling = referral_bundle(patient_ref="Patient/none", with_patient=False)
    assert (await ehr.post("", dangling)).status_code == 422
    pid = await patient_id(ehr)
    stale = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:x",
                "resource": note(pid),
                "request": {"method": "POST", "url": "DocumentReference"},
            },
            {
                "resource": {**(await ehr.get(f"/Patient/{pid}")).json(), "active": False},
                "request": {"method": "PUT", "url": f"Patient/{pid}", "ifMatch": 'W/"9"'},
            },
        ],
    }
    assert (await ehr.post("", stale)).status_code == 412
    assert ehr.sandbox.store.counts() == before
    assert (await ehr.get(f"/Patient/{pid}")).headers["etag"] == 'W/"1"'
    # the id generator was rolled back too: the next id is the one a sandbox without the failures gives
    untouched = make_sandbox()
    created = await ehr.post("/DocumentReference", note(pid))
    assert created.json()["id"] == (await untouched.post("/DocumentReference", note(pid))).json()["id"]


async def test_transaction_refusals(ehr, make_sandbox):
    assert (await ehr.post("", {"resourceType": "Bundle", "type": "batch", "entry": []})).status_code == 400
    bad_entry = {"resourceType": "Bundle", "type": "transaction", "entry": [{"resource": {}}]}
    assert (await ehr.post("", bad_entry)).status_code == 400
    scoped = await ehr.headers("reader", "system/*.rs")
    forbidden = await ehr.post("", referral_bundle(), headers=scoped)
    assert forbidden.status_code == 403
    assert ehr.sandbox.store.counts()["Task"] == 0
    without = make_sandbox(transaction=False)
    refused = await without.post("", referral_bundle())
    assert refused.status_code == 405
    assert refused.json()["issue"][0]["code"] == "not-supported"


# --- auth basics and the CapabilityStatement -----------------------------------------------------------------
async def test_fhir_needs_a_bearer_token(ehr):
    response = await ehr.http.get(f"{ehr.fhir}/Patient")
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["issue"][0]["code"] == "login"
    bogus = await ehr.http.get(f"{ehr.fhir}/Patient", headers={"Authorization": "Bearer not-a-token"})
    assert bogus.status_code == 401


async def test_capability_statement_is_valid_and_truthful(ehr, make_sandbox):
    response = await ehr.http.get(f"{ehr.fhir}/metadata")
    assert response.status_code == 200
    statement = response.json()
    validate(statement)
    rest = statement["rest"][0]
    oauth = rest["security"]["extension"][0]
    assert oauth["extension"][0] == {"url": "token", "valueUri": f"{ROOT}/auth/token"}
    assert rest["interaction"] == [{"code": "transaction"}]
    task = next(r for r in rest["resource"] if r["type"] == "Task")
    assert {"owner", "_lastUpdated", "focus", "identifier"} <= {p["name"] for p in task["searchParam"]}
    assert "Task:focus" in task["searchInclude"]
    assert task["conditionalCreate"] is True and task["updateCreate"] is True
    assert {i["code"] for i in task["interaction"]} == {"read", "vread", "update", "delete", "create", "search-type"}
    poor = make_sandbox(deficient=True)
    statement = (await poor.http.get(f"{poor.fhir}/metadata")).json()
    validate(statement)
    rest = statement["rest"][0]
    assert "interaction" not in rest
    task = next(r for r in rest["resource"] if r["type"] == "Task")
    assert not {"owner", "_lastUpdated"} & {p["name"] for p in task["searchParam"]}
    assert all(r["conditionalCreate"] is False for r in rest["resource"])
    assert (await poor.get("/Task", params={"owner": "Organization/peer-program"})).status_code == 400


async def test_concurrent_requests_share_one_store(ehr):
    pid = await patient_id(ehr)
    responses = await asyncio.gather(*(ehr.post("/DocumentReference", note(pid, f"c-{i}")) for i in range(10)))
    assert {r.status_code for r in responses} == {201}
    assert ehr.sandbox.store.counts()["DocumentReference"] == 10


@pytest.mark.parametrize("path", ["/Patient/_search", ""])
async def test_get_on_post_only_paths(ehr, path):
    assert (await ehr.get(path)).status_code in (404, 405)
