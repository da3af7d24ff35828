"""A partner's export holds exactly what the partner could read (the boundary every read and search
carries), its Group lists exactly the participants the boundary opens to it, a revoked consent
leaves the participant out of later exports, and every export a partner received is in the
accounting of disclosures of each participant it held."""

from __future__ import annotations

from typing import Any

import httpx

from mappings.models import validate
from service.auth.boundary import PUBLIC_TYPES, compartment_patient
from service.cli.seed import SANDBOX_HOSPITAL_KEY
from service.fhir.search_params import SEARCH_PARAMS
from tests.bulk.conftest import as_client
from tests.bulk.support import files, finished, kick_off, search_ids

READ_ALL = "system/*.rs"
CLINIC = "urn:oid:2.16.840.1.113883.19.5|BHC-7"


async def _hospital(http: httpx.AsyncClient, database: Any, demo: Any) -> dict[str, str]:
    return await as_client(http, database, demo, "hospital", READ_ALL, organization=SANDBOX_HOSPITAL_KEY)


async def test_a_partners_export_is_what_its_searches_return(http, database, demo, admin, runner):
    hospital = await _hospital(http, database, demo)
    exported = await files(http, hospital, await finished(http, hospital, await kick_off(http, hospital), runner))
    everything = await files(http, admin, await finished(http, admin, await kick_off(http, admin), runner))
    for resource_type in SEARCH_PARAMS:
        got = {r["id"] for r in exported.get(resource_type, [])}
        assert got == await search_ids(http, hospital, resource_type), resource_type
    hospital_total = sum(len(v) for v in exported.values())
    assert 0 < hospital_total < sum(len(v) for v in everything.values())
    assert "Goal" not in exported  # the demo consents do not open goals


async def test_a_job_is_its_clients_alone(http, database, demo, admin, runner):
    hospital = await _hospital(http, database, demo)
    status = await kick_off(http, admin, _type="Patient")
    manifest = await finished(http, admin, status, runner)
    assert (await http.get(status, headers=hospital)).status_code == 404
    assert (await http.delete(status, headers=hospital)).status_code == 404
    assert (await http.get(manifest["output"][0]["url"], headers=hospital)).status_code == 404
    other_admin = await as_client(http, database, demo, "another-admin")
    assert (await http.get(status, headers=other_admin)).status_code == 404
    assert (await http.get(status, headers=admin)).status_code == 200


async def test_the_partners_group_lists_the_participants_the_boundary_opens(http, database, demo, admin, runner):
    hospital = await _hospital(http, database, demo)
    mine = (await http.get("/fhir/Group", headers=hospital)).json()
    assert mine["total"] == 1
    group = mine["entry"][0]["resource"]
    validate(group)
    assert group["type"] == "person" and group["actual"] is True
    members = {m["entity"]["reference"].removeprefix("Patient/") for m in group["member"]}
    # the participants whose data the hospital may see (of some type: not every consent opens demographics)
    everything = await files(http, hospital, await finished(http, hospital, await kick_off(http, hospital), runner))
    assert members == {compartment_patient(r) for v in everything.values() for r in v} - {None}
    assert group["quantity"] == len(members) > 0
    system, _, value = SANDBOX_HOSPITAL_KEY.partition("|")
    assert group["identifier"] == [{"system": system, "value": value}]
    read = await http.get(f"/fhir/Group/{group['id']}", headers=admin)
    assert read.status_code == 200 and read.json() == group
    found = (await http.get("/fhir/Group", params={"identifier": SANDBOX_HOSPITAL_KEY}, headers=admin)).json()
    assert [e["resource"]["id"] for e in found["entry"]] == [group["id"]]
    assert (await http.get("/fhir/Group", params={"identifier": "x|y"}, headers=admin)).json()["total"] == 0
    assert (await http.get("/fhir/Group", params={"_id": group["id"]}, headers=admin)).json()["total"] == 1
    bad = await http.get("/fhir/Group", params={"name": "x"}, headers=admin)
    assert bad.status_code == 400 and bad.json()["resourceType"] == "OperationOutcome"
    # the Group-level export covers its members' resources, inside the partner's boundary
    status = await kick_off(http, hospital, f"/fhir/Group/{group['id']}/$export")
    manifest = await finished(http, hospital, status, runner)
    exported = await files(http, hospital, manifest)
    assert {t: len(v) for t, v in exported.items()} == {
        t: len([r for r in v if compartment_patient(r)]) for t, v in everything.items() if t not in PUBLIC_TYPES
    }
    assert {compartment_patient(r) for v in exported.values() for r in v} == members


async def test_another_partner_sees_neither_the_group_nor_its_export(http, database, demo, admin):
    hospital = await _hospital(http, database, demo)
    group = (await http.get("/fhir/Group", headers=hospital)).json()["entry"][0]["resource"]
    clinic = await as_client(http, database, demo, "clinic", READ_ALL, organization=CLINIC)
    assert (await http.get(f"/fhir/Group/{group['id']}", headers=clinic)).status_code == 404
    answer = await http.get(f"/fhir/Group/{group['id']}/$export", headers={**clinic, "Prefer": "respond-async"})
    assert answer.status_code == 404
    everyone = (await http.get("/fhir/Group", headers=admin)).json()
    assert {e["resource"]["id"] for e in everyone["entry"]} >= {group["id"]}
    assert everyone["total"] == 2  # the hospital and the clinic
    clinic_group = (await http.get("/fhir/Group", headers=clinic)).json()["entry"][0]["resource"]
    assert clinic_group["quantity"] == 0 and "member" not in clinic_group  # no empty array: valid FHIR JSON
    validate(clinic_group)


async def test_a_revoked_consent_leaves_the_participant_out_and_the_accounting_keeps_the_export(
    http, database, demo, admin, runner
):
    hospital = await _hospital(http, database, demo)
    before = await files(http, hospital, await finished(http, hospital, await kick_off(http, hospital), runner))
    referred = {compartment_patient(r) for r in before.get("ServiceRequest", [])}  # the hospital's own referrals
    pid = next(p for r in before["Encounter"] if (p := compartment_patient(r)) not in referred)
    patient = (await http.get(f"/fhir/Patient/{pid}", headers=admin)).json()
    participant_id = next(i["value"] for i in patient["identifier"] if i["system"].endswith("/participant"))
    consents = (await http.get("/peer/v1/consents", params={"participant_id": participant_id}, headers=admin)).json()
    for consent in consents["items"]:
        assert (await http.post(f"/peer/v1/consents/{consent['id']}/revoke", headers=admin)).status_code == 200
    after = await files(http, hospital, await finished(http, hospital, await kick_off(http, hospital), runner))
    assert pid not in {compartment_patient(r) for v in after.values() for r in v}
    assert sum(len(v) for v in after.values()) > 0  # the others are still there
    report = (await http.get(f"/peer/v1/participants/{participant_id}/disclosures", headers=admin)).json()
    exports = [d for d in report["disclosures"] if d["interaction"] == "bulk export"]
    assert len(exports) == 1  # the export before the revocation, not the one after
    assert exports[0]["recipient_organization"] == SANDBOX_HOSPITAL_KEY
    assert exports[0]["recipient_client"] == "hospital"
    assert exports[0]["resources"] == sorted(
        f"{t}/{r['id']}" for t, v in before.items() for r in v if compartment_patient(r) == pid
    )


async def test_the_export_audit_records_are_valid_audit_events(http, database, demo, admin, runner):
    hospital = await _hospital(http, database, demo)
    await finished(http, hospital, await kick_off(http, hospital, _type="Encounter"), runner)
    found = (await http.get("/fhir/AuditEvent", params={"_count": 500}, headers=admin)).json()
    exports = [
        e["resource"]
        for e in found["entry"]
        if any(c["code"] == "rest.export" for c in e["resource"].get("subtype", []))
    ]
    assert len(exports) > 1  # the export's record and one per participant
    for event in exports:
        validate(event)
        assert {"system": "http://hl7.org/fhir/restful-interaction", "code": "operation", "display": "operation"} in (
            event["subtype"]
        )
