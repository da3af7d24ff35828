"""A fake EHR for fault injection (respx), and a world whose changes queue for it."""

from __future__ import annotations

import itertools
import re
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import respx
from cryptography.hazmat.primitives import serialization
from sqlalchemy import select

from service.domain import Program
from service.exchange import connections
from service.settings import Settings
from service.store import Database
from service.store.tables import outbox
from tests.auth_support import rsa_key
from tests.factories import consent_body, create, encounter_body, note_body, participant_body, specialist_body

BASE = "https://ehr.test/fhir"
TOKEN_URL = "https://ehr.test/oauth/token"
HOSPITAL = {"type": "other", "system": "urn:oid:2.16.840.1.113883.19.5", "value": "general"}
HOSPITAL_KEY = "urn:oid:2.16.840.1.113883.19.5|general"
TYPES = ("Patient", "Practitioner", "PractitionerRole", "Organization", "Encounter", "DocumentReference", "CareTeam")


class FakeEhr:
    """FHIR writes kept in memory; ``faults`` answer (or raise for) the next write requests first."""

    def __init__(self, router: respx.MockRouter, *, transaction: bool = True, update_types: tuple[str, ...] = TYPES):
        self.resources: dict[str, dict[str, Any]] = {}
        self.writes: Counter[str] = Counter()
        self.faults: list[Any] = []
        self.requests: list[httpx.Request] = []
        self.transaction = transaction
        self.update_types = update_types
        self._tokens = itertools.count(1)
        self.valid: set[str] = set()
        self.token_requests = 0
        self.searches: list[str] = []
        self.bundle_refusal: httpx.Response | None = None
        """The answer to every transaction Bundle (an EHR that lists transaction, yet refuses Bundles)."""
        self.refused: dict[str, httpx.Response] = {}
        """Reference -> the answer to a single write of it (a resource the EHR refuses)."""
        self.bundles_tried = 0
        self.granted_scope: str | None = None
        """The ``scope`` of the token answer (None: the answer does not say)."""
        router.get(f"{BASE}/.well-known/smart-configuration").mock(
            return_value=httpx.Response(200, json={"token_endpoint": TOKEN_URL})
        )
        router.post(TOKEN_URL).mock(side_effect=self._token)
        router.get(f"{BASE}/metadata").mock(side_effect=lambda request: httpx.Response(200, json=self.statement()))
        router.post(BASE).mock(side_effect=self._transaction)
        router.get(url__regex=rf"^{re.escape(BASE)}/Task\?").mock(side_effect=self._search_tasks)
        router.put(url__regex=rf"^{re.escape(BASE)}/(\w+)/([\w\-.]+)$").mock(side_effect=self._put)
        router.get(url__regex=rf"^{re.escape(BASE)}/(\w+)/([\w\-.]+)$").mock(side_effect=self._read)

    def statement(self) -> dict[str, Any]:
        rest: dict[str, Any] = {
            "mode": "server",
            "resource": [
                {
                    "type": t,
                    "interaction": [{"code": "read"}, *([{"code": "update"}] if t in self.update_types else [])],
                }
                for t in (*TYPES, "Task")
            ],
        }
        if self.transaction:
            rest["interaction"] = [{"code": "transaction"}]
        return {"resourceType": "CapabilityStatement", "fhirVersion": "4.0.1", "rest": [rest]}

    def expire_tokens(self) -> None:
        self.valid.clear()

    def _token(self, request: httpx.Request) -> httpx.Response:
        self.token_requests += 1
        form = dict(x.split("=", 1) for x in request.content.decode().split("&"))
        assert form["grant_type"] == "client_credentials"
        assert form["client_assertion_type"].startswith("urn%3Aietf")
        token = f"tok-{next(self._tokens)}"
        self.valid.add(token)
        answer = {"access_token": token, "token_type": "Bearer", "expires_in": 300}
        if self.granted_scope is not None:
            answer["scope"] = self.granted_scope
        return httpx.Response(200, json=answer)

    def _authorized(self, request: httpx.Request) -> httpx.Response | None:
        self.requests.append(request)
        if request.headers.get("authorization", "").removeprefix("Bearer ") not in self.valid:
            return httpx.Response(401, json={"resourceType": "OperationOutcome", "issue": [{"code": "login"}]})
        if self.faults and request.method in ("PUT", "POST"):
            fault = self.faults.pop(0)
            if isinstance(fault, Exception):
                raise fault
            return fault  # type: ignore[no-any-return]
        return None

    def _store(self, resource_type: str, resource_id: str, body: dict[str, Any]) -> int:
        key = f"{resource_type}/{resource_id}"
        previous = self.resources.get(key)
        version = int((previous or {}).get("meta", {}).get("versionId", "0")) + 1
        stamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        self.resources[key] = {**body, "id": resource_id, "meta": {"versionId": str(version), "lastUpdated": stamp}}
        self.writes[key] += 1
        return version

    def _put(self, request: httpx.Request) -> httpx.Response:
        refused = self._authorized(request)
        if refused is not None:
            return refused
        _, resource_type, resource_id = request.url.path.rsplit("/", 2)
        if resource_type not in self.update_types and resource_type != "Task":
            return httpx.Response(405, json={"resourceType": "OperationOutcome", "issue": [{"code": "not-supported"}]})
        if f"{resource_type}/{resource_id}" in self.refused:
            return self.refused[f"{resource_type}/{resource_id}"]
        body = orjson.loads(request.content)
        current = self.resources.get(f"{resource_type}/{resource_id}")
        if_match = request.headers.get("if-match")
        if if_match and current is not None and if_match != f'W/"{current["meta"]["versionId"]}"':
            return httpx.Response(412, json={"resourceType": "OperationOutcome", "issue": [{"code": "conflict"}]})
        version = self._store(resource_type, resource_id, body)
        return httpx.Response(
            200, json=self.resources[f"{resource_type}/{resource_id}"], headers={"ETag": f'W/"{version}"'}
        )

    def _read(self, request: httpx.Request) -> httpx.Response:
        refused = self._authorized(request)
        if refused is not None:
            return refused
        _, resource_type, resource_id = request.url.path.rsplit("/", 2)
        found = self.resources.get(f"{resource_type}/{resource_id}")
        if found is None:
            return httpx.Response(404, json={"resourceType": "OperationOutcome", "issue": [{"code": "not-found"}]})
        return httpx.Response(200, json=found)

    def _transaction(self, request: httpx.Request) -> httpx.Response:
        refused = self._authorized(request)
        if refused is not None:
            return refused
        self.bundles_tried += 1
        if self.bundle_refusal is not None:
            return self.bundle_refusal
        bundle = orjson.loads(request.content)
        answers = []
        for entry in bundle["entry"]:
            resource_type, resource_id = entry["request"]["url"].split("/")
            version = self._store(resource_type, resource_id, entry["resource"])
            answers.append(
                {"response": {"status": "200 OK", "location": f"{resource_type}/{resource_id}/_history/{version}"}}
            )
        return httpx.Response(200, json={"resourceType": "Bundle", "type": "transaction-response", "entry": answers})

    def _search_tasks(self, request: httpx.Request) -> httpx.Response:
        refused = self._authorized(request)
        if refused is not None:
            return refused
        self.searches.append(str(request.url))
        owner = request.url.params.get("owner")
        since = (request.url.params.get("_lastUpdated") or "").removeprefix("gt")
        tasks = [
            r
            for k, r in sorted(self.resources.items())
            if k.startswith("Task/")
            and (r.get("owner") or {}).get("reference") == owner
            and (not since or r["meta"]["lastUpdated"] > since)
        ]
        entries = [{"resource": t, "search": {"mode": "match"}} for t in tasks]
        for task in tasks:
            focus = self.resources.get(task["focus"]["reference"])
            if focus is not None:
                entries.append({"resource": focus, "search": {"mode": "include"}})
        return httpx.Response(200, json={"resourceType": "Bundle", "type": "searchset", "entry": entries})

    def seed_referral(self, order: str = "ORD-1", updated: str = "2026-11-20T10:00:00Z") -> str:
        """The clinic's Patient, ServiceRequest and Task (owned by the peer program) at the EHR; the Task id."""
        self.resources["Patient/p1"] = {
            "resourceType": "Patient",
            "id": "p1",
            "meta": {"versionId": "1"},
            "identifier": [
                {
                    "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]},
                    "system": "urn:oid:2.16.840.1.113883.19.5.1",
                    "value": "MRN-4242",
                }
            ],
            "name": [{"family": "Okafor", "given": ["Ada"]}],
            "birthDate": "1988-04-02",
            "gender": "female",
        }
        self.resources[f"ServiceRequest/sr-{order}"] = {
            **clinic_service_request(order),
            "id": f"sr-{order}",
            "meta": {"versionId": "1"},
            "subject": {"reference": "Patient/p1"},
        }
        task_id = f"t-{order}"
        self.resources[f"Task/{task_id}"] = {
            "resourceType": "Task",
            "id": task_id,
            "meta": {"versionId": "1", "lastUpdated": updated},
            "status": "requested",
            "intent": "order",
            "code": {"coding": [{"system": "http://hl7.org/fhir/CodeSystem/task-code", "code": "fulfill"}]},
            "focus": {"reference": f"ServiceRequest/sr-{order}"},
            "for": {"reference": "Patient/p1"},
            "owner": {"reference": "Organization/peer"},
            "authoredOn": "2026-11-20T10:00:00Z",
        }
        return task_id

    def held(self, resource_type: str) -> list[str]:
        return sorted(k for k in self.resources if k.startswith(f"{resource_type}/"))


def clinic_service_request(order: str) -> dict[str, Any]:
    """A clinic's referral to the peer program, as an EHR holds it (Gravity SDOH closed loop)."""
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
                "identifier": [{"system": "http://hl7.org/fhir/sid/us-npi", "value": "1234567893"}],
                "name": [{"family": "Water", "given": ["Jan"]}],
            },
            {
                "resourceType": "Organization",
                "id": "org",
                "identifier": [{"system": "urn:oid:2.16.840.1.113883.19.5", "value": "general"}],
                "name": "General Hospital",
            },
        ],
        "identifier": [{"system": "urn:oid:2.16.840.1.113883.19.5.99", "value": order}],
        "status": "active",
        "intent": "order",
        "authoredOn": "2026-11-20T09:15:00Z",
        "requester": {"reference": "#role"},
        "reasonCode": [{"text": "Isolation after discharge"}],
        "priority": "routine",
    }


def private_key_file(tmp_path: Path) -> Path:
    path = tmp_path / "ehr-key.pem"
    pem = rsa_key().private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path.write_bytes(pem)
    return path


async def add_connection(database: Database, program: Program, tmp_path: Path, **fields: Any) -> None:
    values = {
        "name": "hospital",
        "base_url": BASE,
        "client_id": "peerlink",
        "organization": HOSPITAL_KEY,
        "key_file": str(private_key_file(tmp_path)),
        "push": ["encounters", "notes"],
        **fields,
    }
    async with database.transaction() as conn:
        await connections.add(conn, program.id, values, datetime.now(UTC))


async def consented_session(client: httpx.AsyncClient, *, consent: bool = True) -> dict[str, str]:
    """A participant (consenting to share encounters and notes with the hospital, or not), a finished
    session and its signed note, created through the peer API."""
    specialist = (await create(client, "specialists", specialist_body()))["id"]
    participant = (await create(client, "participants", participant_body()))["id"]
    if consent:
        recipient = {"name": "General Hospital", "identifier": HOSPITAL}
        await create(client, "consents", consent_body(participant, recipient=recipient))
    encounter = (await create(client, "encounters", encounter_body(participant, specialist)))["id"]
    note = (await create(client, "notes", note_body(encounter, specialist)))["id"]
    signed = await client.post(f"/peer/v1/notes/{note}/sign")
    assert signed.status_code == 200, signed.text
    return {"specialist": specialist, "participant": participant, "encounter": encounter, "note": note}


async def states(database: Database) -> list[tuple[str, str, str]]:
    """(kind, state, last_error) of every outbox row, oldest first."""
    q = outbox.c
    async with database.read() as conn:
        rows = await conn.execute(select(q.kind, q.state, q.last_error).order_by(q.pk))
        return [(r.kind, r.state, r.last_error or "") for r in rows]


async def make_due(database: Database) -> None:
    """Fast-forward: every waiting row is due now (instead of sleeping through a backoff)."""
    async with database.transaction() as conn:
        await conn.execute(outbox.update().where(outbox.c.state == "pending").values(next_attempt_at=datetime.now(UTC)))


def writes_of(ehr: FakeEhr) -> list[httpx.Request]:
    """The FHIR writes the EHR received (PUT, POST; not the token requests)."""
    return [r for r in ehr.requests if r.method in ("POST", "PUT")]


def fast_settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={"retry_base_seconds": 0.01, "retry_cap_seconds": 0.05, "circuit_failures": 1000, "outbox_batch": 50}
    )
