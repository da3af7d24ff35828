"""Data boundaries: an organisation's client sees only what a consent naming it opens (the consented
categories, during the consent's period, until it is revoked) and the referrals it sent itself (their
ServiceRequest and Task, and the referred Patient). Outside that, nothing exists: reads, vreads and
histories are 404, searches, includes, revincludes and history pages leave it out. Every id set is
compared exactly against what the program's own client sees."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import func, select

from mappings.ids import fhir_id
from service.store.tables import participants, referrals
from tests.conftest import token_headers
from tests.factories import (
    MRN_SYSTEM,
    TODAY,
    at,
    care_team_body,
    consent_body,
    create,
    encounter_body,
    goal_body,
    note_body,
    participant_body,
    referral_body,
    specialist_body,
)

FHIR = "application/fhir+json"
HOSPITAL = ("urn:oid:2.16.840.1.113883.3.7001", "general-hospital")
CLINIC_OID = "urn:oid:2.16.840.1.113883.19.5"
CLINIC = (CLINIC_OID, "BHC-7")
OTHER_CLINIC = (CLINIC_OID, "OTHER-9")
NPI_HOSPITAL = "1234567893"
PLACER = "urn:oid:2.16.840.1.113883.19.5.99"
READ_ALL = "system/*.rs"
CLINIC_SCOPES = "system/*.rs system/ServiceRequest.c system/Task.cu"


def org(identifier: tuple[str, str], name: str) -> dict[str, Any]:
    system, value = identifier
    return {"name": name, "identifier": {"type": "other", "system": system, "value": value}}


def key(identifier: tuple[str, str]) -> str:
    return "|".join(identifier)


@dataclass
class Scene:
    """The records, by participant letter, and the FHIR ids the program's own client sees."""

    program_system: str
    participant: dict[str, str] = field(default_factory=dict)
    encounters: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    notes: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    consents: dict[str, str] = field(default_factory=dict)
    goals: dict[str, str] = field(default_factory=dict)
    referral: dict[str, str] = field(default_factory=dict)
    """'clinic' (for C, from the clinic) and 'other' (for A, from another clinic)."""
    by_patient: dict[str, dict[str, set[str]]] = field(default_factory=dict)
    """FHIR type -> Patient id -> ids of the resources about that Patient (the admin's view)."""
    service_request: dict[str, str] = field(default_factory=dict)
    task: dict[str, str] = field(default_factory=dict)
    hospital: dict[str, str] = field(default_factory=dict)
    clinic: dict[str, str] = field(default_factory=dict)

    def patient(self, letter: str) -> str:
        return fhir_id(self.program_system, "participant", self.participant[letter])

    def of(self, resource_type: str, *letters: str) -> set[str]:
        found: set[str] = set()
        for letter in letters:
            found |= self.by_patient.get(resource_type, {}).get(self.patient(letter), set())
        return found


def patient_of(resource: dict[str, Any]) -> str | None:
    if resource["resourceType"] == "Patient":
        return str(resource["id"])
    for element in ("subject", "patient", "for"):
        reference = (resource.get(element) or {}).get("reference", "")
        if reference.startswith("Patient/"):
            return str(reference.removeprefix("Patient/"))
    return None


async def everything(http: httpx.AsyncClient, path: str, headers: dict[str, str] | None = None, **params: Any):
    """Every entry of a search or history, following next links; returns the entries."""
    response = await http.get(path, params={"_count": 2, **params}, headers=headers or {})
    assert response.status_code == 200, response.text
    entries: list[dict[str, Any]] = []
    seen_pages = 0
    while True:
        bundle = response.json()
        assert bundle["resourceType"] == "Bundle"
        entries += bundle.get("entry", [])
        following = [link["url"] for link in bundle.get("link", []) if link["relation"] == "next"]
        if not following:
            return entries
        seen_pages += 1
        assert seen_pages < 100
        response = await http.get(following[0], headers=headers or {})
        assert response.status_code == 200, response.text


def grouped(entries: list[dict[str, Any]]) -> dict[str, set[str]]:
    found: dict[str, set[str]] = defaultdict(set)
    for entry in entries:
        found[entry["resource"]["resourceType"]].add(entry["resource"]["id"])
    return dict(found)


async def search(http, resource_type: str, headers: dict[str, str], **params: Any) -> dict[str, set[str]]:
    return grouped(await everything(http, f"/fhir/{resource_type}", headers, **params))


@pytest.fixture
async def scene(client, database, program) -> Scene:
    """Participants A, B, C, D and E:

    - A: consent naming the hospital (encounters, notes, demographics), current; a referral from
      another clinic; a goal and a care team (not consented); a consent naming an NPI-identified
      hospital for goals only;
    - B: the same consent, revoked;
    - C: the same consent, ended yesterday; a referral from the clinic;
    - D: the same consent, starting tomorrow;
    - E: nothing at all.
    """
    s = Scene(program.identifier_system)
    c = client
    specialist = (await create(c, "specialists", specialist_body()))["id"]
    for day, letter in enumerate("ABCDE"):
        body = participant_body(
            name={"family": f"Person{letter}", "given": ["Test"]},
            identifiers=[{"type": "MR", "system": MRN_SYSTEM, "value": f"MRN-{letter}"}],
        )
        pid = s.participant[letter] = (await create(c, "participants", body))["id"]
        for session in range(2):
            start = at(2 + day * 2 + session, hour=9 + session)
            encounter = await create(
                c,
                "encounters",
                encounter_body(
                    pid, specialist, start=start.isoformat(), end=(start + timedelta(minutes=45)).isoformat()
                ),
            )
            s.encounters[letter].append(encounter["id"])
            note = await create(c, "notes", note_body(encounter["id"], specialist))
            s.notes[letter].append(note["id"])
        s.goals[letter] = (await create(c, "goals", goal_body(pid)))["id"]
        await create(c, "care-team-members", care_team_body(pid, specialist))

    categories = ["encounters", "notes", "demographics"]
    recipient = org(HOSPITAL, "General Hospital")
    year = {"start": str(TODAY - timedelta(days=10)), "end": str(TODAY + timedelta(days=365))}
    periods = {
        "A": year,
        "B": year,
        "C": {"start": str(TODAY - timedelta(days=30)), "end": str(TODAY - timedelta(days=1))},
        "D": {"start": str(TODAY + timedelta(days=1)), "end": str(TODAY + timedelta(days=365))},
    }
    for letter, period in periods.items():
        body = consent_body(s.participant[letter], recipient=recipient, categories=categories, period=period)
        s.consents[letter] = (await create(c, "consents", body))["id"]
    revoked = await c.post(f"/peer/v1/consents/{s.consents['B']}/revoke")
    assert revoked.status_code == 200, revoked.text
    npi_consent = consent_body(
        s.participant["A"], recipient={"name": "NPI Hospital", "npi": NPI_HOSPITAL}, categories=["goals"], period=year
    )
    s.consents["A-npi"] = (await create(c, "consents", npi_consent))["id"]

    s.referral["clinic"] = (
        await create(
            c,
            "referrals",
            referral_body(
                s.participant["C"],
                referring_organization=org(CLINIC, "Better Health Clinic"),
                identifiers=[{"type": "other", "system": PLACER, "value": "CLINIC-ORDER-1"}],
            ),
        )
    )["id"]
    s.referral["other"] = (
        await create(
            c,
            "referrals",
            referral_body(
                s.participant["A"],
                referring_organization=org(OTHER_CLINIC, "Other Clinic"),
                identifiers=[{"type": "other", "system": PLACER, "value": "OTHER-ORDER-1"}],
            ),
        )
    )["id"]

    # the program's own view: every resource, by the Patient it is about
    for resource_type in (
        "Patient",
        "Encounter",
        "DocumentReference",
        "Goal",
        "CareTeam",
        "ServiceRequest",
        "Task",
        "Consent",
    ):
        by: dict[str, set[str]] = defaultdict(set)
        for entry in await everything(c, f"/fhir/{resource_type}", _count=50):
            by[patient_of(entry["resource"]) or ""].add(entry["resource"]["id"])
        s.by_patient[resource_type] = dict(by)
    assert len(s.by_patient["Patient"]) == 5
    assert all(len(s.of("Encounter", letter)) == 2 for letter in "ABCDE")
    assert all(len(s.of("DocumentReference", letter)) == 2 for letter in "ABCDE")
    assert all(len(s.of("Goal", letter)) == 1 for letter in "ABCDE")
    for name, referral_id in s.referral.items():
        system = f"{program.identifier_system.rstrip('/')}/referral"
        matched = (await c.get("/fhir/ServiceRequest", params={"identifier": f"{system}|{referral_id}"})).json()
        s.service_request[name] = matched["entry"][0]["resource"]["id"]
        tasks = (await c.get("/fhir/Task", params={"focus": f"ServiceRequest/{s.service_request[name]}"})).json()
        s.task[name] = tasks["entry"][0]["resource"]["id"]

    s.hospital = await token_headers(c, database, program, "hospital", READ_ALL, organization=key(HOSPITAL))
    s.clinic = await token_headers(c, database, program, "clinic", CLINIC_SCOPES, organization=key(CLINIC))
    return s


# --- the hospital, by consent ------------------------------------------------------------------------------
async def test_hospital_patient_search_finds_only_the_consented_participant(client, scene):
    h = scene.hospital
    assert await search(client, "Patient", h) == {"Patient": {scene.patient("A")}}
    count = (await client.get("/fhir/Patient", params={"_summary": "count"}, headers=h)).json()
    assert count["total"] == 1
    posted = await client.post("/fhir/Patient/_search", data={"_count": "50"}, headers=h)
    assert grouped(posted.json().get("entry", [])) == {"Patient": {scene.patient("A")}}
    for letter in "BCDE":
        # asking for them by id or by their MRN finds nothing either
        assert await search(client, "Patient", h, _id=scene.patient(letter)) == {}
        assert await search(client, "Patient", h, identifier=f"{MRN_SYSTEM}|MRN-{letter}") == {}
    assert await search(client, "Patient", h, identifier=f"{MRN_SYSTEM}|MRN-A") == {"Patient": {scene.patient("A")}}


async def test_hospital_reads_outside_the_consent_are_404(client, scene):
    h = scene.hospital
    assert (await client.get(f"/fhir/Patient/{scene.patient('A')}", headers=h)).status_code == 200
    for encounter in scene.of("Encounter", "A"):
        assert (await client.get(f"/fhir/Encounter/{encounter}", headers=h)).status_code == 200
    for letter in "BCDE":
        hidden = [f"Patient/{scene.patient(letter)}"]
        hidden += [f"Encounter/{i}" for i in scene.of("Encounter", letter)]
        hidden += [f"DocumentReference/{i}" for i in scene.of("DocumentReference", letter)]
        for reference in hidden:
            for path in (f"/fhir/{reference}", f"/fhir/{reference}/_history/1", f"/fhir/{reference}/_history"):
                response = await client.get(path, headers=h)
                assert response.status_code == 404, (path, response.text)
                assert response.json()["resourceType"] == "OperationOutcome"
                assert scene.patient(letter) not in response.text


async def test_hospital_encounter_search_include_and_revinclude(client, scene):
    h = scene.hospital
    a_encounters = scene.of("Encounter", "A")
    assert await search(client, "Encounter", h) == {"Encounter": a_encounters}
    assert await search(client, "Encounter", h, _include="Encounter:patient") == {
        "Encounter": a_encounters,
        "Patient": {scene.patient("A")},
    }
    assert await search(client, "Patient", h, _revinclude="Encounter:patient") == {
        "Patient": {scene.patient("A")},
        "Encounter": a_encounters,
    }
    assert await search(client, "Encounter", h, _revinclude="DocumentReference:encounter") == {
        "Encounter": a_encounters,
        "DocumentReference": scene.of("DocumentReference", "A"),
    }
    for letter in "BCDE":
        assert await search(client, "Encounter", h, patient=scene.patient(letter)) == {}
        assert await search(client, "Encounter", h, subject=f"Patient/{scene.patient(letter)}") == {}
    count = (await client.get("/fhir/Encounter", params={"_summary": "count"}, headers=h)).json()
    assert count["total"] == 2


async def test_hospital_history_shows_only_the_consented(client, scene):
    h = scene.hospital
    for resource_type in ("Patient", "Encounter", "DocumentReference"):
        history = grouped(await everything(client, f"/fhir/{resource_type}/_history", h))
        assert history == {resource_type: scene.of(resource_type, "A")}, resource_type
    for resource_type in ("Goal", "CareTeam", "ServiceRequest", "Task"):
        assert await everything(client, f"/fhir/{resource_type}/_history", h) == [], resource_type
    instance = grouped(await everything(client, f"/fhir/Patient/{scene.patient('A')}/_history", h))
    assert instance == {"Patient": {scene.patient("A")}}


async def test_hospital_notes_only_of_the_consented(client, scene):
    h = scene.hospital
    assert await search(client, "DocumentReference", h) == {"DocumentReference": scene.of("DocumentReference", "A")}
    assert await search(client, "DocumentReference", h, _include="DocumentReference:encounter") == {
        "DocumentReference": scene.of("DocumentReference", "A"),
        "Encounter": scene.of("Encounter", "A"),
    }


async def test_hospital_sees_nothing_of_categories_not_consented(client, scene):
    h = scene.hospital
    for resource_type in ("Goal", "CareTeam", "ServiceRequest", "Task"):
        assert await search(client, resource_type, h) == {}, resource_type
    for resource_type in ("Goal", "CareTeam"):
        for resource_id in scene.of(resource_type, "A"):
            assert (await client.get(f"/fhir/{resource_type}/{resource_id}", headers=h)).status_code == 404
    assert (await client.get(f"/fhir/ServiceRequest/{scene.service_request['other']}", headers=h)).status_code == 404
    assert (await client.get(f"/fhir/Task/{scene.task['other']}", headers=h)).status_code == 404
    # the Patient's revincludes of what is not consented stay out too
    assert await search(client, "Patient", h, _revinclude="Goal:patient") == {"Patient": {scene.patient("A")}}
    assert await search(client, "Patient", h, _revinclude="ServiceRequest:patient") == {"Patient": {scene.patient("A")}}


async def test_hospital_sees_the_consent_that_names_it_and_the_staff(client, scene):
    h = scene.hospital
    own = fhir_id(scene.program_system, "consent", scene.consents["A"])
    assert own in scene.of("Consent", "A")
    # not the NPI hospital's consent about A, nor the revoked, ended and future ones
    assert await search(client, "Consent", h) == {"Consent": {own}}
    for letter in "BCD":
        for consent in scene.of("Consent", letter):
            assert (await client.get(f"/fhir/Consent/{consent}", headers=h)).status_code == 404
    # the program's staff and organisation are no participant's data
    assert set(await search(client, "Practitioner", h)) == {"Practitioner"}
    assert set(await search(client, "Organization", h)) == {"Organization"}


async def test_npi_identified_organisation(client, database, program, scene):
    headers = await token_headers(client, database, program, "npi-hospital", READ_ALL, organization=NPI_HOSPITAL)
    assert await search(client, "Goal", headers) == {"Goal": scene.of("Goal", "A")}
    for resource_type in ("Patient", "Encounter", "DocumentReference", "ServiceRequest", "Task"):
        assert await search(client, resource_type, headers) == {}, resource_type
    assert (await client.get(f"/fhir/Patient/{scene.patient('A')}", headers=headers)).status_code == 404


async def test_an_organisation_without_grants_sees_no_participant_data(client, database, program, scene):
    headers = await token_headers(
        client, database, program, "stranger", READ_ALL, organization="urn:oid:2.16.840.1.113883.3.9|nobody"
    )
    for resource_type in (
        "Patient",
        "Encounter",
        "DocumentReference",
        "Goal",
        "CareTeam",
        "ServiceRequest",
        "Task",
        "Consent",
    ):
        assert await search(client, resource_type, headers) == {}, resource_type
        assert await everything(client, f"/fhir/{resource_type}/_history", headers) == [], resource_type


async def test_revoking_closes_the_boundary_at_once(client, scene):
    h = scene.hospital
    assert await search(client, "Patient", h) == {"Patient": {scene.patient("A")}}
    assert (await client.post(f"/peer/v1/consents/{scene.consents['A']}/revoke")).status_code == 200
    for resource_type in ("Patient", "Encounter", "DocumentReference", "Consent"):
        assert await search(client, resource_type, h) == {}, resource_type
    assert (await client.get(f"/fhir/Patient/{scene.patient('A')}", headers=h)).status_code == 404


# --- the clinic, by its referral -------------------------------------------------------------------------------
async def test_clinic_sees_its_referral_and_the_referred_patient_only(client, scene):
    k = scene.clinic
    assert await search(client, "ServiceRequest", k) == {"ServiceRequest": {scene.service_request["clinic"]}}
    assert await search(client, "Task", k) == {"Task": {scene.task["clinic"]}}
    assert await search(client, "Patient", k) == {"Patient": {scene.patient("C")}}
    assert (await client.get(f"/fhir/Patient/{scene.patient('C')}", headers=k)).status_code == 200
    assert (await client.get(f"/fhir/ServiceRequest/{scene.service_request['clinic']}", headers=k)).status_code == 200
    assert (await client.get(f"/fhir/Task/{scene.task['clinic']}", headers=k)).status_code == 200
    assert await search(client, "Task", k, _include="Task:focus") == {
        "Task": {scene.task["clinic"]},
        "ServiceRequest": {scene.service_request["clinic"]},
    }
    assert await search(client, "ServiceRequest", k, _include="ServiceRequest:patient") == {
        "ServiceRequest": {scene.service_request["clinic"]},
        "Patient": {scene.patient("C")},
    }
    assert await search(client, "ServiceRequest", k, _revinclude="Task:focus") == {
        "ServiceRequest": {scene.service_request["clinic"]},
        "Task": {scene.task["clinic"]},
    }


async def test_clinic_does_not_see_the_referred_patients_other_records(client, scene):
    k = scene.clinic
    for resource_type in ("Encounter", "DocumentReference", "Goal", "CareTeam", "Consent"):
        assert await search(client, resource_type, k) == {}, resource_type
        assert await everything(client, f"/fhir/{resource_type}/_history", k) == [], resource_type
    for encounter in scene.of("Encounter", "C"):
        assert (await client.get(f"/fhir/Encounter/{encounter}", headers=k)).status_code == 404
        assert (await client.get(f"/fhir/Encounter/{encounter}/_history/1", headers=k)).status_code == 404
    assert await search(client, "Patient", k, _revinclude="Encounter:patient") == {"Patient": {scene.patient("C")}}
    owners = await search(client, "Task", k, _include="Task:owner")
    assert set(owners) <= {"Task", "Organization", "Practitioner", "PractitionerRole"}


async def test_the_other_clinics_referral_is_invisible(client, scene):
    k = scene.clinic
    for path in (
        f"/fhir/ServiceRequest/{scene.service_request['other']}",
        f"/fhir/ServiceRequest/{scene.service_request['other']}/_history/1",
        f"/fhir/ServiceRequest/{scene.service_request['other']}/_history",
        f"/fhir/Task/{scene.task['other']}",
        f"/fhir/Task/{scene.task['other']}/_history",
        f"/fhir/Patient/{scene.patient('A')}",
    ):
        response = await client.get(path, headers=k)
        assert response.status_code == 404, (path, response.text)
    assert await search(client, "ServiceRequest", k, identifier=f"{PLACER}|OTHER-ORDER-1") == {}
    assert await search(client, "Task", k, focus=f"ServiceRequest/{scene.service_request['other']}") == {}
    history = grouped(await everything(client, "/fhir/ServiceRequest/_history", k))
    assert history == {"ServiceRequest": {scene.service_request["clinic"]}}


# --- the clinic's writes ----------------------------------------------------------------------------------------
def inbound_referral(
    clinic: tuple[str, str], mrn: str, order: str, family: str = "PersonA", birth_date: str = "1990-04-01"
) -> dict[str, Any]:
    """A clinic's ServiceRequest: the requester a PractitionerRole of the clinic's Organization; the
    contained Patient by default agrees with participant A (as a clinic that really knows A would send)."""
    system, value = clinic
    return {
        "resourceType": "ServiceRequest",
        "contained": [
            {
                "resourceType": "Patient",
                "id": "pat",
                "identifier": [
                    {
                        "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]},
                        "system": MRN_SYSTEM,
                        "value": mrn,
                    }
                ],
                "name": [{"family": family, "given": ["Test"]}],
                "gender": "female",
                "birthDate": birth_date,
            },
            {
                "resourceType": "PractitionerRole",
                "id": "role",
                "practitioner": {"reference": "#dr"},
                "organization": {"reference": "#org"},
            },
            {
                "resourceType": "Practitioner",
                "id": "dr",
                "identifier": [{"system": "http://hl7.org/fhir/sid/us-npi", "value": "1234567893"}],
                "name": [{"family": "Water", "given": ["Jan"]}],
            },
            {
                "resourceType": "Organization",
                "id": "org",
                "identifier": [{"system": system, "value": value}],
                "name": "A Clinic",
            },
        ],
        "identifier": [{"system": PLACER, "value": order}],
        "status": "active",
        "intent": "order",
        "subject": {"reference": "#pat"},
        "authoredOn": "2026-01-03T09:15:00-08:00",
        "requester": {"reference": "#role"},
        "reasonCode": [{"text": "Isolation after discharge"}],
        "priority": "routine",
    }


async def _counts(database) -> tuple[int, int]:
    async with database.read() as conn:
        referral_count = (await conn.execute(select(func.count()).select_from(referrals))).scalar_one()
        participant_count = (await conn.execute(select(func.count()).select_from(participants))).scalar_one()
    return int(referral_count), int(participant_count)


async def _all_referrals(client) -> set[str]:
    return {r["id"] for r in (await client.get("/peer/v1/referrals", params={"limit": 500})).json()["items"]}


async def post_fhir(client, path: str, body: dict[str, Any], headers: dict[str, str], **extra: str):
    return await client.post(path, content=orjson.dumps(body), headers={**headers, "Content-Type": FHIR, **extra})


@pytest.mark.parametrize("mrn", ["MRN-A", "MRN-NEW"])
async def test_clinic_cannot_write_a_referral_for_another_organisation(client, database, scene, mrn):
    before, known = await _counts(database), await _all_referrals(client)
    response = await post_fhir(
        client, "/fhir/ServiceRequest", inbound_referral(OTHER_CLINIC, mrn, "FORGED-1"), scene.clinic
    )
    assert response.status_code == 403, response.text
    assert response.json()["issue"][0]["code"] == "forbidden"
    assert scene.patient("A") not in response.text and "FORGED-1" not in response.text
    assert await _counts(database) == before
    assert await _all_referrals(client) == known
    # nor in a transaction Bundle
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:8b0e5e5e-7a0c-4b51-9d3c-1b4c8d5b0a01",
                "resource": inbound_referral(OTHER_CLINIC, mrn, "FORGED-2"),
                "request": {"method": "POST", "url": "ServiceRequest"},
            }
        ],
    }
    response = await post_fhir(client, "/fhir", bundle, scene.clinic)
    assert response.status_code == 403, response.text
    assert await _counts(database) == before
    assert await _all_referrals(client) == known


async def test_clinic_writes_its_own_referral_and_then_sees_it(client, database, scene):
    before = await _counts(database)
    response = await post_fhir(client, "/fhir/ServiceRequest", inbound_referral(CLINIC, "MRN-A", "OWN-1"), scene.clinic)
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["subject"]["reference"] == f"Patient/{scene.patient('A')}"
    assert await _counts(database) == (before[0] + 1, before[1])
    k = scene.clinic
    assert await search(client, "ServiceRequest", k) == {
        "ServiceRequest": {scene.service_request["clinic"], created["id"]}
    }
    # the referral opens the referred Patient to the clinic, and nothing else of A
    assert await search(client, "Patient", k) == {"Patient": {scene.patient("A"), scene.patient("C")}}
    assert await search(client, "Encounter", k) == {}
    assert (await client.get(f"/fhir/ServiceRequest/{scene.service_request['other']}", headers=k)).status_code == 404
    # a resend is the same referral
    again = await post_fhir(
        client,
        "/fhir/ServiceRequest",
        inbound_referral(CLINIC, "MRN-A", "OWN-1"),
        k,
        **{"If-None-Exist": f"identifier={PLACER}|OWN-1"},
    )
    assert again.status_code == 200, again.text
    assert again.json()["id"] == created["id"]


async def test_a_guessed_mrn_does_not_reveal_the_participant(client, database, scene):
    """A clinic that knows nothing of participant A but an MRN (another hospital's, guessed) must not
    learn who A is: a consent naming the clinic is what would open A's demographics. The referral may
    be stored (as a new participant for review), but the Patient the clinic then sees is not A's record."""
    k = scene.clinic
    guess = inbound_referral(CLINIC, "MRN-A", "HARVEST-1", family="Unknown", birth_date="1955-12-31")
    response = await post_fhir(client, "/fhir/ServiceRequest", guess, k)
    assert response.status_code < 500, response.text
    assert scene.patient("A") not in response.text
    assert (await client.get(f"/fhir/Patient/{scene.patient('A')}", headers=k)).status_code == 404
    visible = await search(client, "Patient", k)
    assert scene.patient("A") not in visible.get("Patient", set())
    for patient in await everything(client, "/fhir/Patient", k):
        assert patient["resource"]["name"][0]["family"] != "PersonA"


async def test_clinic_cannot_touch_the_other_clinics_task(client, scene):
    k = scene.clinic
    other = (await client.get(f"/fhir/Task/{scene.task['other']}")).json()
    changed = {**other, "status": "cancelled", "statusReason": {"text": "not yours"}}
    put = await client.put(
        f"/fhir/Task/{scene.task['other']}", content=orjson.dumps(changed), headers={**k, "Content-Type": FHIR}
    )
    assert put.status_code == 404, put.text
    patch = await client.patch(
        f"/fhir/Task/{scene.task['other']}",
        content=orjson.dumps([{"op": "replace", "path": "/status", "value": "cancelled"}]),
        headers={**k, "Content-Type": "application/json-patch+json"},
    )
    assert patch.status_code == 404, patch.text
    restated = await post_fhir(client, "/fhir/Task", other, k)
    assert restated.status_code in (403, 404), restated.text
    assert scene.patient("A") not in restated.text
    after = (await client.get(f"/fhir/Task/{scene.task['other']}")).json()
    assert after == other
    # its own Task it may cancel
    own = (await client.get(f"/fhir/Task/{scene.task['clinic']}", headers=k)).json()
    cancelled = {**own, "status": "cancelled", "statusReason": {"text": "moved away"}}
    put = await client.put(
        f"/fhir/Task/{scene.task['clinic']}", content=orjson.dumps(cancelled), headers={**k, "Content-Type": FHIR}
    )
    assert put.status_code == 200, put.text


async def test_conditional_create_does_not_reveal_the_other_clinics_order(client, database, scene):
    """If-None-Exist on an identifier of a referral outside the boundary must not hand that referral back."""
    before = await _counts(database)
    body = inbound_referral(CLINIC, "MRN-C", "OTHER-ORDER-1")
    response = await post_fhir(
        client, "/fhir/ServiceRequest", body, scene.clinic, **{"If-None-Exist": f"identifier={PLACER}|OTHER-ORDER-1"}
    )
    assert response.status_code != 200 or response.json()["id"] != scene.service_request["other"], response.text
    assert scene.service_request["other"] not in response.text
    assert scene.patient("A") not in response.text
    if response.status_code >= 400:
        assert await _counts(database) == before
