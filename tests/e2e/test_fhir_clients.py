"""Real third-party FHIR clients against the gateway as a real process on loopback: fhirpy
(AsyncFHIRClient, aiohttp) and the SMART on FHIR `fhirclient` package (requests, R4 models that
parse every response strictly). Each reads a Patient, pages through Encounters by following the
server's next links, asks for the Patients with _include, and sends a clinic's referral: a
ServiceRequest, then the Task about it. Written against the FHIR R4 RESTful API, not our code."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fhirclient import client as smart_client  # type: ignore[import-untyped]  # fhirclient ships no py.typed
from fhirclient.models.bundle import Bundle  # type: ignore[import-untyped]
from fhirclient.models.encounter import Encounter  # type: ignore[import-untyped]
from fhirclient.models.patient import Patient  # type: ignore[import-untyped]
from fhirclient.models.servicerequest import ServiceRequest  # type: ignore[import-untyped]
from fhirclient.models.task import Task  # type: ignore[import-untyped]
from fhirpy import AsyncFHIRClient

from tests.e2e.gateway import Gateway, cli_token, running_gateway

pytestmark = pytest.mark.e2e
SEEDED_ENCOUNTERS = 24
PAGE = 5
PLACER = "urn:oid:2.16.840.1.113883.19.5.99"
CLINIC_OID = "urn:oid:2.16.840.1.113883.19.5"
NPI = "http://hl7.org/fhir/sid/us-npi"
TASK_CODE = "http://hl7.org/fhir/CodeSystem/task-code"


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """`peerlink migrate`, `seed` and `serve` on a free loopback port."""
    with running_gateway(tmp_path_factory.mktemp("fhir-clients")) as gateway:
        yield gateway


@pytest.fixture(scope="module")
def gateway(running: Gateway) -> str:
    """The FHIR base URL."""
    return f"{running.base}/fhir"


@pytest.fixture(scope="module")
def token(running: Gateway) -> str:
    """An access token the seeded demo client obtained from the token endpoint (`peerlink token`)."""
    return cli_token(running.env)


@pytest.fixture(scope="module")
def patient_ids(gateway: str, token: str) -> list[str]:
    """Ids of seeded Patients (from type-level history, which needs no search)."""
    auth = {"Authorization": f"Bearer {token}"}
    bundle = httpx.get(f"{gateway}/Patient/_history", params={"_count": 500}, headers=auth).json()
    ids = sorted({entry["resource"]["id"] for entry in bundle["entry"]})
    assert len(ids) >= 3
    return ids


def referral(patient_id: str, order: str) -> dict[str, Any]:
    """A clinic's referral to the peer program (Gravity SDOH closed loop): a ServiceRequest for a
    Patient the server holds, requested by a PractitionerRole sent along as contained resources."""
    return {
        "resourceType": "ServiceRequest",
        "contained": [
            {
                "resourceType": "PractitionerRole",
                "id": "role",
                "practitioner": {"reference": "#dr"},
                "organization": {"reference": "#org"},
            },
            {
                "resourceType": "Practitioner",
                "id": "dr",
                "identifier": [{"system": NPI, "value": "1234567893"}],
                "name": [{"family": "Water", "given": ["Jan"]}],
            },
            {
                "resourceType": "Organization",
                "id": "org",
                "identifier": [{"system": CLINIC_OID, "value": "BHC-7"}],
                "name": "Better Health Clinic",
            },
        ],
        "identifier": [{"system": PLACER, "value": order}],
        "status": "active",
        "intent": "order",
        "subject": {"reference": f"Patient/{patient_id}"},
        "authoredOn": "2026-01-03T09:15:00-08:00",
        "requester": {"reference": "#role"},
        "reasonCode": [{"text": "Isolation after discharge"}],
        "priority": "routine",
    }


def clinic_task(service_request_id: str, patient_id: str) -> dict[str, Any]:
    """The clinic's Task asking the program to fulfil that ServiceRequest."""
    return {
        "resourceType": "Task",
        "status": "requested",
        "intent": "order",
        "code": {"coding": [{"system": TASK_CODE, "code": "fulfill"}]},
        "focus": {"reference": f"ServiceRequest/{service_request_id}"},
        "for": {"reference": f"Patient/{patient_id}"},
        "requester": {"display": "Better Health Clinic", "identifier": {"system": CLINIC_OID, "value": "BHC-7"}},
    }


def own_referral_id(service_request: dict[str, Any]) -> str | None:
    own = [i["value"] for i in service_request.get("identifier", []) if i.get("system", "").endswith("/referral")]
    return own[0] if own else None


# --- fhirpy ---------------------------------------------------------------------------------------


async def test_fhirpy_reads_a_patient(gateway, token, patient_ids):
    client = AsyncFHIRClient(gateway, authorization=f"Bearer {token}")
    patient = await client.reference("Patient", patient_ids[0]).to_resource()
    assert patient["resourceType"] == "Patient"
    assert patient["id"] == patient_ids[0]
    assert patient["meta"]["versionId"] == "1"
    assert patient["name"][0]["family"]


async def test_fhirpy_pages_encounters_and_includes_patients(gateway, token):
    client = AsyncFHIRClient(gateway, authorization=f"Bearer {token}")
    # async iteration follows the Bundle's next links until there are none
    encounters = await client.resources("Encounter").limit(PAGE).fetch_all()
    ids = [e["id"] for e in encounters]
    assert len(ids) == SEEDED_ENCOUNTERS and len(set(ids)) == SEEDED_ENCOUNTERS
    page = await client.resources("Encounter").include("Encounter", "patient").limit(PAGE).fetch_raw()
    matches = [e for e in page["entry"] if e["search"]["mode"] == "match"]
    included = [e for e in page["entry"] if e["search"]["mode"] == "include"]
    assert len(matches) == PAGE
    assert {e["resource"]["resourceType"] for e in included} == {"Patient"}
    subjects = {e["resource"]["subject"]["reference"] for e in matches}
    assert {f"Patient/{e['resource']['id']}" for e in included} == subjects
    assert any(link["relation"] == "next" for link in page["link"])
    # a reference parameter with a bare id, as fhirpy writes it
    patient_id = subjects.pop().split("/")[1]
    theirs = await client.resources("Encounter").search(patient=patient_id).fetch_all()
    assert theirs and all(e["subject"]["reference"] == f"Patient/{patient_id}" for e in theirs)


async def test_fhirpy_creates_a_referral(gateway, token, patient_ids):
    client = AsyncFHIRClient(gateway, authorization=f"Bearer {token}")
    patient_id = patient_ids[1]
    service_request = client.resource("ServiceRequest", **referral(patient_id, f"ORD-FHIRPY-{uuid.uuid4().hex[:8]}"))
    await service_request.create()
    assert service_request["id"] and service_request["subject"]["reference"] == f"Patient/{patient_id}"
    assert own_referral_id(service_request.serialize())
    task = client.resource("Task", **clinic_task(service_request["id"], patient_id))
    await task.create()
    assert task["id"]
    assert task["focus"]["reference"] == f"ServiceRequest/{service_request['id']}"
    read_back = await client.reference("Task", task["id"]).to_resource()
    assert read_back["status"] in ("requested", "received", "accepted")
    found = await client.resources("Task").search(focus=f"ServiceRequest/{service_request['id']}").fetch_all()
    assert [t["id"] for t in found] == [task["id"]]


# --- fhirclient (SMART on FHIR) -------------------------------------------------------------------


@pytest.fixture(scope="module")
def smart(gateway: str, token: str) -> smart_client.FHIRClient:
    """The SMART client reads the CapabilityStatement first (parsed by its own R4 models, its security
    block telling it this is an OAuth2 server), then signs requests with the backend token."""
    client = smart_client.FHIRClient(settings={"app_id": "peerlink-e2e", "api_base": gateway + "/"})
    client.prepare()
    assert client.server.auth is not None
    client.server.auth.access_token = token
    return client


def test_fhirclient_reads_the_capability_statement_and_a_patient(smart, patient_ids):
    capability = smart.server.capabilityStatement
    assert capability.fhirVersion == "4.0.1"
    assert capability.software.name == "PeerLink"
    served = {r.type: {i.code for i in r.interaction or []} for r in capability.rest[0].resource}
    assert {"read", "vread"} <= served["Patient"]
    patient = Patient.read(patient_ids[0], smart.server)
    assert patient.id == patient_ids[0]
    assert patient.meta.versionId == "1"
    assert patient.name[0].family


def test_fhirclient_pages_encounters_and_includes_patients(smart):
    search = Encounter.where(struct={"_count": str(PAGE)}).include("subject")
    pages = list(search.perform_iter(smart.server))
    assert len(pages) == -(-SEEDED_ENCOUNTERS // PAGE)
    assert all(isinstance(page, Bundle) and page.type == "searchset" for page in pages)
    matches = [e.resource for page in pages for e in page.entry or [] if e.search.mode == "match"]
    included = [e.resource for page in pages for e in page.entry or [] if e.search.mode == "include"]
    assert len({m.id for m in matches}) == SEEDED_ENCOUNTERS
    assert included and all(isinstance(p, Patient) for p in included)
    assert {m.subject.reference for m in matches} == {f"Patient/{p.id}" for p in included}


def test_fhirclient_creates_a_referral(smart, patient_ids):
    patient_id = patient_ids[2]
    created = ServiceRequest(referral(patient_id, f"ORD-SMART-{uuid.uuid4().hex[:8]}")).create(smart.server)
    assert created is not None
    service_request = ServiceRequest(created)  # the answer parses as an R4 ServiceRequest
    assert service_request.id and service_request.subject.reference == f"Patient/{patient_id}"
    answer = Task(clinic_task(service_request.id, patient_id)).create(smart.server)
    assert answer is not None
    task = Task(answer)
    assert task.focus.reference == f"ServiceRequest/{service_request.id}"
    assert Task.read(task.id, smart.server).for_fhir.reference == f"Patient/{patient_id}"
