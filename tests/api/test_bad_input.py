"""Bad input on every peer API endpoint: each is refused with the right status as problem+json, never
a 500, never echoing what was sent (it may be PHI), and nothing is stored.

The endpoints come from the app's own OpenAPI document, so a new route is covered without editing
this file; a route these tests cannot drive (no sample body, no way to reach its starting state)
fails loudly instead of being skipped. Each test loops over the endpoints and reports every
offending (endpoint, input) pair at once: the per-test fixtures cost far more than the requests.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from service.cli.openapi import render
from service.domain import ProgramFields
from service.records.programs import create_program
from service.records.types import ALL
from service.store import Database
from tests import factories as f
from tests.conftest import token_headers
from tests.factories import World

PEER = "/peer/v1"
PHI = "Zebulon-Quartz"  # a made-up name: it must never come back in an error body
PROBLEM_KEYS = ("type", "title", "status", "detail", "request_id")
BODY_LIMIT = 64_000  # tests/conftest.py: Settings(max_body_bytes=64_000)
JSON = "application/json"
BY = "Intake Coordinator"


# --- the endpoints, from the OpenAPI document ---------------------------------------------------


@dataclass(frozen=True)
class Op:
    method: str
    path: str
    op_id: str
    has_body: bool
    params: frozenset[str]
    body_schema: str | None

    def __str__(self) -> str:
        return f"{self.method} {self.path}"

    @property
    def segments(self) -> list[str]:
        return self.path.removeprefix(PEER + "/").split("/")

    @property
    def kind(self) -> str:
        """The record collection the route belongs to, e.g. 'care-team-members'."""
        return self.segments[0]

    @property
    def kind_key(self) -> str:
        """The key of World.ids for this kind, e.g. 'care-team-member'."""
        return self.kind.removesuffix("s")

    @property
    def on_record(self) -> bool:
        return "{record_id}" in self.path

    @property
    def is_create(self) -> bool:
        return self.method == "POST" and not self.on_record

    @property
    def is_update(self) -> bool:
        return self.method == "PATCH" and self.path.endswith("{record_id}")

    @property
    def is_action(self) -> bool:
        return self.method == "POST" and self.on_record and not self.path.endswith("{record_id}")

    @property
    def is_read(self) -> bool:
        return self.method == "GET" and self.path.endswith("{record_id}")

    @property
    def is_list(self) -> bool:
        return self.method == "GET" and "limit" in self.params

    @property
    def is_write(self) -> bool:
        return self.method in ("POST", "PATCH", "PUT")

    def url(self, record_id: str | None = None) -> str:
        if self.on_record:
            assert record_id is not None, f"{self} needs a record id"
            return self.path.replace("{record_id}", record_id)
        return self.path


SPEC: dict[str, Any] = json.loads(render())


def _ops(spec: dict[str, Any]) -> list[Op]:
    ops = []
    for path, methods in spec["paths"].items():
        if not path.startswith(PEER + "/"):
            continue
        for method, operation in methods.items():
            body = operation.get("requestBody")
            if body is not None and JSON not in body["content"]:
                continue  # an X12 body (the payer's 999/835): tests/billing/test_claims_api.py checks it
            ref = body["content"][JSON]["schema"].get("$ref", "") if body else ""
            ops.append(
                Op(
                    method=method.upper(),
                    path=path,
                    op_id=operation["operationId"],
                    has_body=body is not None,
                    params=frozenset(p["name"] for p in operation.get("parameters", [])),
                    body_schema=ref.rsplit("/", 1)[-1] or None,
                )
            )
    return ops


OPS = _ops(SPEC)
OPS_BY_ID = {op.op_id: op for op in OPS}
WRITE_OPS = [op for op in OPS if op.is_write]
BODY_OPS = [op for op in WRITE_OPS if op.has_body]
BODYLESS_WRITE_OPS = [op for op in WRITE_OPS if not op.has_body]
ITEM_OPS = [op for op in OPS if op.on_record]  # GET /{id}, PATCH /{id}, POST /{id}/action
CHANGE_OPS = [op for op in ITEM_OPS if op.is_write]  # PATCH /{id}, POST /{id}/action
IF_MATCH_OPS = [op for op in CHANGE_OPS if "If-Match" in op.params]
LIST_OPS = [op for op in OPS if op.is_list]
PEER_PATHS = sorted({op.path for op in OPS})


def _methods(path: str) -> set[str]:
    return {method.upper() for method in SPEC["paths"][path]}


def _schema(name: str) -> dict[str, Any]:
    schema: dict[str, Any] = SPEC["components"]["schemas"][name]
    return schema


# --- valid bodies, so that the one bad thing in a request is the thing under test ---------------

CREATE_BODIES: dict[str, Callable[[dict[str, str]], dict[str, Any]]] = {
    "specialists": lambda ids: f.specialist_body(),
    "participants": lambda ids: f.participant_body(),
    "care-team-members": lambda ids: f.care_team_body(ids["participant"], ids["specialist"]),
    "encounters": lambda ids: f.encounter_body(ids["participant"], ids["specialist"]),
    "notes": lambda ids: f.note_body(ids["encounter"], ids["specialist"]),
    "referrals": lambda ids: f.referral_body(ids["participant"]),
    "consents": lambda ids: f.consent_body(ids["participant"]),
    "goals": lambda ids: f.goal_body(ids["participant"]),
    "assessments": lambda ids: f.assessment_body(ids["participant"], ids["specialist"]),
    "coverages": lambda ids: {
        "participant_id": ids["participant"],
        "payer": "default",
        "member_id": "M-1",
        "period": {"start": "2026-01-01"},
    },
    "billing": lambda ids: {"payer": "nc-medicaid", "from": "2026-03-01", "to": "2026-03-31"},  # claims export
}

ACTION_BODIES: dict[str, Callable[[dict[str, str]], dict[str, Any]]] = {
    "receive_referral": lambda ids: {"by": BY},
    "accept_referral": lambda ids: {"by": BY, "specialist_id": ids["specialist"]},
    "reject_referral": lambda ids: {"by": BY, "reason": "Outside the service area"},
    "start_referral": lambda ids: {"by": BY},
    "complete_referral": lambda ids: {"by": BY, "outcome_summary": "Connected with housing services"},
    "cancel_referral": lambda ids: {"by": BY, "reason": "The clinic withdrew the referral"},
    "assign_referral": lambda ids: {"by": BY, "specialist_id": ids["specialist"], "reason": "Top match"},
    "amend_note": lambda ids: {"author_id": ids["specialist"], "text": "Correction: the call is on Tuesday."},
    "set_billing_provider": lambda ids: {"tax_id": "990000001"},
    "amend_assessment": lambda ids: {
        k: v
        for k, v in f.assessment_body(ids["participant"], ids["specialist"]).items()
        if k not in ("participant_id", "instrument")
    },
}

# The actions that bring a fresh record into the state an action starts from.
PREREQUISITES: dict[str, tuple[str, ...]] = {
    "accept_referral": ("receive_referral",),
    "assign_referral": ("receive_referral",),
    "reject_referral": ("receive_referral",),
    "start_referral": ("receive_referral", "accept_referral"),
    "complete_referral": ("receive_referral", "accept_referral", "start_referral"),
    "amend_note": ("sign_note",),
}


def create_body(kind: str, ids: dict[str, str]) -> dict[str, Any]:
    if kind not in CREATE_BODIES:
        pytest.fail(f"no sample body for /{kind}: add one to CREATE_BODIES")
    return CREATE_BODIES[kind](ids)


def sample_body(op: Op, ids: dict[str, str]) -> dict[str, Any] | None:
    """A body ``op`` accepts (given records with ``ids``), or None when it takes none."""
    if not op.has_body:
        return None
    if op.is_create:
        return create_body(op.kind, ids)
    if op.is_update:
        assert op.body_schema, f"{op} has no named body schema"
        editable = _schema(op.body_schema)["properties"]
        return {k: v for k, v in create_body(op.kind, ids).items() if k in editable}
    if op.op_id not in ACTION_BODIES:
        pytest.fail(f"no sample body for {op}: add one to ACTION_BODIES")
    return ACTION_BODIES[op.op_id](ids)


def placeholder_ids() -> dict[str, str]:
    """Well-formed ids of records that do not exist."""
    return {key: str(uuid.uuid4()) for key in ("specialist", "participant", "encounter")}


def encode(body: Any) -> bytes:
    return json.dumps(body).encode()


# --- checking the answers -----------------------------------------------------------------------


def problem_mismatch(response: httpx.Response, status: int) -> str | None:
    """Why ``response`` is not the problem+json answer with ``status``; None when it is."""
    if response.status_code != status:
        return f"got {response.status_code}, expected {status}: {response.text[:300]}"
    media_type = response.headers.get("content-type", "").split(";")[0].strip()
    if media_type != "application/problem+json":
        return f"content-type is {media_type!r}, not application/problem+json"
    try:
        body = response.json()
    except ValueError:
        return "the body is not JSON"
    if not isinstance(body, dict):
        return "the body is not a JSON object"
    missing = [key for key in PROBLEM_KEYS if key not in body]
    if missing:
        return f"keys {missing} are missing: {body}"
    if body["status"] != status or isinstance(body["status"], bool):
        return f"body status {body['status']!r} differs from the HTTP status {status}"
    for key in ("type", "title", "detail"):
        if not isinstance(body[key], str) or not body[key]:
            return f"{key} is not a non-empty string: {body[key]!r}"
    request_id = body["request_id"]
    if not isinstance(request_id, str) or not request_id:
        return f"request_id is not a non-empty string: {request_id!r}"
    if request_id != response.headers.get("x-request-id"):
        return f"request_id {request_id!r} differs from X-Request-ID {response.headers.get('x-request-id')!r}"
    if PHI.lower() in response.text.lower():
        return f"the error body echoes the input: {response.text[:300]}"
    if any(PHI.lower() in value.lower() for value in response.headers.values()):
        return "a response header echoes the input"
    return None


class Expect:
    """Collects every mismatch, so one run names all the offending endpoints and inputs."""

    def __init__(self) -> None:
        self.failures: list[str] = []
        self.checked = 0

    def problem(self, label: str, response: httpx.Response, status: int) -> dict[str, Any]:
        self.checked += 1
        mismatch = problem_mismatch(response, status)
        if mismatch:
            self.failures.append(f"{label}: {mismatch}")
            return {}
        body: dict[str, Any] = response.json()
        return body

    def that(self, ok: bool, message: str) -> None:
        self.checked += 1
        if not ok:
            self.failures.append(message)

    def verify(self, *, at_least: int = 1) -> None:
        assert self.checked >= at_least, f"only {self.checked} checks ran: is the endpoint list empty?"
        assert not self.failures, f"{len(self.failures)} of {self.checked} checks failed:\n" + "\n".join(self.failures)


async def send(
    client: httpx.AsyncClient,
    op: Op,
    record_id: str | None,
    content: bytes | None = None,
    *,
    content_type: str | None = JSON,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    sent = dict(headers or {})
    if content is not None and content_type is not None:
        sent["content-type"] = content_type
    return await client.request(op.method, op.url(record_id), content=content, headers=sent)


async def kind_state(client: httpx.AsyncClient, kind: str, headers: dict[str, str] | None = None) -> dict[str, int]:
    """Id and version of every record of one kind."""
    response = await client.get(f"{PEER}/{kind}", params={"limit": 500}, headers=headers)
    assert response.status_code == 200, response.text
    page = response.json()
    assert page["next_cursor"] is None, "expected fewer than 500 records a kind"
    return {item["id"]: item["version"] for item in page["items"]}


async def snapshot(client: httpx.AsyncClient, headers: dict[str, str] | None = None) -> dict[str, dict[str, int]]:
    """Every record's id and version, kind by kind, read through the list endpoints."""
    return {op.kind: await kind_state(client, op.kind, headers) for op in LIST_OPS}


async def assert_nothing_stored(
    client: httpx.AsyncClient, before: dict[str, dict[str, int]], headers: dict[str, str] | None = None
) -> None:
    after = await snapshot(client, headers)
    changed = {path: (before[path], after[path]) for path in before if before[path] != after[path]}
    assert not changed, f"a refused request changed stored records: {changed}"


def id_for(op: Op, ids: dict[str, str]) -> str | None:
    return ids[op.kind_key] if op.on_record else None


async def prepare(client: httpx.AsyncClient, ids: dict[str, str], op: Op) -> str:
    """A fresh record of ``op``'s kind in the state ``op`` starts from; returns its id."""
    if not op.on_record:
        return ""  # a route on no record (POST /matching/plan): nothing to prepare
    record = await f.create(client, op.kind, create_body(op.kind, ids))
    for step in PREREQUISITES.get(op.op_id, ()):
        prior = OPS_BY_ID[step]
        body = sample_body(prior, ids)
        response = await send(client, prior, record["id"], None if body is None else encode(body))
        assert response.is_success, f"preparing {op}: {prior} answered {response.status_code} {response.text}"
    return str(record["id"])


async def etag_of(client: httpx.AsyncClient, op: Op, record_id: str) -> str:
    response = await client.get(f"{PEER}/{op.kind}/{record_id}")
    assert response.status_code == 200, response.text
    return response.headers["etag"]


@pytest.fixture
async def world(client: httpx.AsyncClient) -> World:
    built = await World(client).build()
    body = f.assessment_body(built.ids["participant"], built.ids["specialist"])
    built.ids["assessment"] = (await f.create(client, "assessments", body))["id"]
    built.ids["coverage"] = (await f.create(client, "coverages", CREATE_BODIES["coverages"](built.ids)))["id"]
    return built


# --- the endpoint lists -------------------------------------------------------------------------


def test_endpoint_lists_come_from_the_openapi_document() -> None:
    for name, ops in {
        "ops": OPS,
        "write": WRITE_OPS,
        "body": BODY_OPS,
        "item": ITEM_OPS,
        "change": CHANGE_OPS,
        "if-match": IF_MATCH_OPS,
        "list": LIST_OPS,
    }.items():
        assert ops, f"the {name} endpoint list is empty"
    ids = {op.op_id for op in OPS}
    actions = {op.op_id for op in OPS if op.is_action}
    for rtype in ALL:
        for verb in ("create", "read", "update", "list"):
            assert f"{verb}_{rtype.stored.name}" in ids
    assert {
        *(f"{action}_referral" for action in ("receive", "accept", "reject", "start", "complete", "cancel")),
        "sign_note",
        "amend_note",
        "retract_note",
        "revoke_consent",
    } <= actions
    explicit_updates = {"update_coverage"}  # PATCH routes of records outside the generated ones
    assert len(CHANGE_OPS) == len(ALL) + len(actions) + len(explicit_updates)
    missing = {op.kind for op in ITEM_OPS} - set(CREATE_BODIES)
    assert not missing, f"no sample body to create {missing}: add them to CREATE_BODIES"


# --- bodies -------------------------------------------------------------------------------------

MALFORMED = {
    "unclosed object": b"{",
    "missing value": b'{"text": }',
    "single quotes": b"{'text': 'Zebulon-Quartz'}",
    "trailing comma": b'{"text": "Zebulon-Quartz",}',
    "bare word": b"Zebulon-Quartz",
    "truncated string": b'{"text": "Zebulon-Quartz',
    "not UTF-8": b'{"text": "\xff\xfeZebulon-Quartz"}',
}


async def test_malformed_json_is_400(client: httpx.AsyncClient, world: World) -> None:
    expect = Expect()
    before = await snapshot(client)
    for op in BODY_OPS:
        for case, payload in MALFORMED.items():
            response = await send(client, op, id_for(op, world.ids), payload)
            expect.problem(f"{op} [{case}]", response, 400)
        # a sane client-chosen request id is the one the problem names
        response = await send(client, op, id_for(op, world.ids), b"{", headers={"X-Request-ID": "client-id-0001"})
        body = expect.problem(f"{op} [client request id]", response, 400)
        expect.that(body.get("request_id") == "client-id-0001", f"{op}: the caller's X-Request-ID is not kept")
    expect.verify(at_least=len(BODY_OPS))
    await assert_nothing_stored(client, before)


def _wrong_values(value: Any) -> list[Any]:
    """JSON values of another kind than ``value`` that no lax conversion turns into it."""
    if isinstance(value, dict):
        return [42, PHI]
    if isinstance(value, list):
        return [PHI, 42]
    return [{"value": PHI}, [PHI]]


async def test_wrong_json_types_are_422(client: httpx.AsyncClient, world: World) -> None:
    expect = Expect()
    before = await snapshot(client)
    for op in BODY_OPS:
        record_id = id_for(op, world.ids)
        body = sample_body(op, world.ids)
        assert body is not None
        top_level = {
            "empty list": [],
            "list of the body": [body],
            "number": 42,
            "string": PHI,
            "boolean": True,
            "null": None,
        }
        for case, value in top_level.items():
            response = await send(client, op, record_id, encode(value))
            expect.problem(f"{op} [body is {case}]", response, 422)
        response = await send(client, op, record_id, b"")
        expect.problem(f"{op} [empty body]", response, 422)
        for field, value in body.items():
            for wrong in _wrong_values(value):
                response = await send(client, op, record_id, encode({**body, field: wrong}))
                expect.problem(f"{op} [{field} = {wrong!r}]", response, 422)
    expect.verify(at_least=len(BODY_OPS))
    await assert_nothing_stored(client, before)


def _refuses_field(problem: dict[str, Any], *loc: str) -> bool:
    return any(
        e.get("loc", [])[-len(loc) :] == list(loc) and e.get("type") == "extra_forbidden"
        for e in problem.get("errors", [])
    )


async def test_unknown_fields_are_422(client: httpx.AsyncClient, world: World) -> None:
    expect = Expect()
    before = await snapshot(client)
    nested = 0
    for op in BODY_OPS:
        record_id = id_for(op, world.ids)
        body = sample_body(op, world.ids)
        assert body is not None
        response = await send(client, op, record_id, encode({**body, "nickname": PHI}))
        problem = expect.problem(f"{op} [unknown top-level field]", response, 422)
        expect.that(_refuses_field(problem, "nickname") or not problem, f"{op}: 'nickname' is not named as unknown")
        # fields the server owns are unknown to a client's body
        for field, value in {"id": PHI, "version": 7, "program_id": PHI, "created_at": "2024-01-01T00:00:00Z"}.items():
            response = await send(client, op, record_id, encode({**body, field: value}))
            problem = expect.problem(f"{op} [server-owned field {field}]", response, 422)
            expect.that(_refuses_field(problem, field) or not problem, f"{op}: {field!r} is not named as unknown")
        for field, value in body.items():
            if isinstance(value, dict):
                nested += 1
                response = await send(client, op, record_id, encode({**body, field: {**value, "nickname": PHI}}))
                problem = expect.problem(f"{op} [unknown field in {field}]", response, 422)
                expect.that(
                    _refuses_field(problem, field, "nickname") or not problem,
                    f"{op}: {field}.nickname is not named as unknown",
                )
                break
    assert nested, "no body with a nested object was tried"
    expect.verify(at_least=len(BODY_OPS))
    await assert_nothing_stored(client, before)


def _oversized() -> bytes:
    body = encode({"text": PHI + "x" * BODY_LIMIT})
    assert len(body) > BODY_LIMIT
    return body


async def test_body_over_the_limit_is_413_by_content_length(client: httpx.AsyncClient, world: World) -> None:
    expect = Expect()
    before = await snapshot(client)
    payload = _oversized()
    for op in WRITE_OPS:
        response = await send(client, op, id_for(op, world.ids), payload)
        expect.that(response.request.headers.get("content-length") == str(len(payload)), f"{op}: no Content-Length")
        expect.problem(f"{op} [{len(payload)} bytes]", response, 413)
    expect.verify(at_least=len(WRITE_OPS))
    await assert_nothing_stored(client, before)


async def _stream(data: bytes, size: int = 8_192) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def _send_streamed(client: httpx.AsyncClient, op: Op, record_id: str | None, data: bytes) -> httpx.Response:
    response = await client.request(op.method, op.url(record_id), content=_stream(data), headers={"content-type": JSON})
    assert "content-length" not in response.request.headers, "the body was not streamed"
    assert response.request.headers.get("transfer-encoding") == "chunked"
    return response


async def test_streamed_bodies_are_checked_like_any_other(client: httpx.AsyncClient, world: World) -> None:
    """Control for the streamed-413 cases below: streaming itself works and is validated."""
    expect = Expect()
    before = await snapshot(client)
    for op in BODY_OPS:
        response = await _send_streamed(client, op, id_for(op, world.ids), b'{"text": "Zebulon-Quartz"')
        expect.problem(f"{op} [streamed malformed JSON]", response, 400)
    expect.verify(at_least=len(BODY_OPS))
    await assert_nothing_stored(client, before)
    accepted = await _send_streamed(client, OPS_BY_ID["create_participant"], None, encode(f.participant_body()))
    assert accepted.status_code == 201, accepted.text


async def test_streamed_body_over_the_limit_is_413(client: httpx.AsyncClient) -> None:
    expect = Expect()
    before = await snapshot(client)
    payload = _oversized()
    for op in BODY_OPS:
        response = await _send_streamed(client, op, id_for(op, {op.kind_key: str(uuid.uuid4())}), payload)
        expect.problem(f"{op} [streamed {len(payload)} bytes]", response, 413)
    expect.verify(at_least=len(BODY_OPS))
    await assert_nothing_stored(client, before)


async def test_streamed_body_over_the_limit_is_413_on_actions_without_body(
    client: httpx.AsyncClient, world: World
) -> None:
    assert BODYLESS_WRITE_OPS
    expect = Expect()
    targets = {op.op_id: await prepare(client, world.ids, op) for op in BODYLESS_WRITE_OPS}
    before = await snapshot(client)
    for op in BODYLESS_WRITE_OPS:
        response = await _send_streamed(client, op, targets[op.op_id], _oversized())
        expect.problem(f"{op} [streamed oversized body]", response, 413)
    expect.verify()
    await assert_nothing_stored(client, before)


async def test_malformed_json_is_400_on_actions_without_body(client: httpx.AsyncClient, world: World) -> None:
    assert BODYLESS_WRITE_OPS
    expect = Expect()
    targets = {op.op_id: await prepare(client, world.ids, op) for op in BODYLESS_WRITE_OPS}
    before = await snapshot(client)
    for op in BODYLESS_WRITE_OPS:
        response = await send(client, op, targets[op.op_id], b'{"reason": "Zebulon-Quartz"')
        expect.problem(f"{op} [malformed JSON]", response, 400)
    expect.verify()
    await assert_nothing_stored(client, before)


NOT_JSON = {
    "text/plain": None,  # the JSON text itself, labelled text: the server must not sniff
    "text/plain; charset=utf-8": None,
    "application/xml": b"<participant><name>Zebulon-Quartz</name></participant>",
    "application/x-www-form-urlencoded": b"name=Zebulon-Quartz",
    "text/json": None,
}


async def test_non_json_media_type_is_415(client: httpx.AsyncClient, world: World) -> None:
    expect = Expect()
    before = await snapshot(client)
    for op in WRITE_OPS:
        record_id = id_for(op, world.ids)
        as_json = encode(sample_body(op, world.ids) or {"reason": PHI})
        for media_type, payload in NOT_JSON.items():
            response = await send(client, op, record_id, payload or as_json, content_type=media_type)
            expect.problem(f"{op} [{media_type}]", response, 415)
        response = await send(client, op, record_id, as_json, content_type=None)
        expect.problem(f"{op} [no Content-Type]", response, 415)
    expect.verify(at_least=len(WRITE_OPS))
    await assert_nothing_stored(client, before)


# --- record ids ---------------------------------------------------------------------------------


async def test_unknown_record_id_is_404(client: httpx.AsyncClient) -> None:
    expect = Expect()
    refs = placeholder_ids()
    for op in ITEM_OPS:
        body = sample_body(op, refs)
        for record_id in (str(uuid.uuid4()), "0", "no-such-record", "9" * 64):
            response = await send(client, op, record_id, None if body is None else encode(body))
            expect.problem(f"{op} [{record_id}]", response, 404)
    expect.verify(at_least=len(ITEM_OPS))
    assert all(not ids for ids in (await snapshot(client)).values())


async def test_record_of_another_program_is_404(client: httpx.AsyncClient, database: Database) -> None:
    async with database.transaction() as conn:
        other_program = await create_program(
            conn, ProgramFields(code="other", name="Other Peer Program", identifier_system="https://other.example/ids")
        )
    other = await token_headers(client, database, other_program, "other-program")
    ours = client.headers["Authorization"]
    client.headers.update(other)
    theirs = await World(client).build()
    assessment = f.assessment_body(theirs.ids["participant"], theirs.ids["specialist"])
    theirs.ids["assessment"] = (await f.create(client, "assessments", assessment))["id"]
    theirs.ids["coverage"] = (await f.create(client, "coverages", CREATE_BODIES["coverages"](theirs.ids)))["id"]
    client.headers["Authorization"] = ours
    before = await snapshot(client, other)
    expect = Expect()
    for op in ITEM_OPS:
        body = sample_body(op, theirs.ids)
        response = await send(client, op, id_for(op, theirs.ids), None if body is None else encode(body))
        expect.problem(f"{op} [record of program 'other']", response, 404)
    expect.verify(at_least=len(ITEM_OPS))
    await assert_nothing_stored(client, before, other)


# --- If-Match -----------------------------------------------------------------------------------

MALFORMED_IF_MATCH = ("abc", 'W/"x"', "W/", '""', 'W/"1" junk', f'"{PHI}"', "W/'1'")


async def test_malformed_if_match_is_400(client: httpx.AsyncClient, world: World) -> None:
    expect = Expect()
    before = await snapshot(client)
    for op in IF_MATCH_OPS:
        body = sample_body(op, world.ids)
        for value in MALFORMED_IF_MATCH:
            response = await send(
                client, op, id_for(op, world.ids), None if body is None else encode(body), headers={"If-Match": value}
            )
            expect.problem(f"{op} [If-Match: {value}]", response, 400)
    expect.verify(at_least=len(IF_MATCH_OPS))
    await assert_nothing_stored(client, before)


async def _stale_if_match_checks(client: httpx.AsyncClient, world: World, ops: list[Op], expect: Expect) -> None:
    for op in ops:
        record_id = await prepare(client, world.ids, op)
        body = sample_body(op, world.ids)
        content = None if body is None else encode(body)
        current = await etag_of(client, op, record_id)
        before = await kind_state(client, op.kind)
        for stale in ('W/"99"', '"99"', 'W/"0"'):
            response = await send(client, op, record_id, content, headers={"If-Match": stale})
            expect.problem(f"{op} [If-Match: {stale}, record at {current}]", response, 412)
        for value in MALFORMED_IF_MATCH[:2]:
            response = await send(client, op, record_id, content, headers={"If-Match": value})
            expect.problem(f"{op} [If-Match: {value}]", response, 400)
        after = await kind_state(client, op.kind)
        expect.that(after == before, f"{op}: a request with a failed precondition changed {op.kind}")
        # control: the same request with the current version goes through
        response = await send(client, op, record_id, content, headers={"If-Match": current})
        expect.that(response.is_success, f"{op} [If-Match: {current}] control: {response.status_code} {response.text}")


async def test_stale_if_match_is_412(client: httpx.AsyncClient, world: World) -> None:
    expect = Expect()
    await _stale_if_match_checks(client, world, IF_MATCH_OPS, expect)
    expect.verify(at_least=len(IF_MATCH_OPS))


async def test_every_change_route_honours_if_match(client: httpx.AsyncClient, world: World) -> None:
    ignoring = [op for op in CHANGE_OPS if "If-Match" not in op.params]
    expect = Expect()
    await _stale_if_match_checks(client, world, ignoring, expect)
    expect.verify(at_least=0)


# --- list endpoints -----------------------------------------------------------------------------


async def test_unknown_query_parameter_is_422(client: httpx.AsyncClient) -> None:
    expect = Expect()
    for op in LIST_OPS:
        for params in ({"zebulon": PHI}, {"name": PHI}, {"Limit": "5"}, {"limit": "5", "page": "2"}):
            response = await client.get(op.path, params=params)
            expect.problem(f"{op} [{params}]", response, 422)
    expect.verify(at_least=len(LIST_OPS))


async def test_bad_limit_is_422(client: httpx.AsyncClient) -> None:
    expect = Expect()
    for op in LIST_OPS:
        for limit in ("0", "-1", "501", "100000", "abc", "1.5", "", "99999999999999999999999"):
            response = await client.get(op.path, params={"limit": limit})
            expect.problem(f"{op} [limit={limit!r}]", response, 422)
    expect.verify(at_least=len(LIST_OPS))


def _cursor(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


async def test_garbage_cursor_is_400(client: httpx.AsyncClient, world: World) -> None:
    expect = Expect()
    garbage = (PHI, "!!!", "", _cursor(b"pk:abc"), _cursor(b"id:5"), _cursor(b"pk:"), _cursor(b"\xff\xfe"), "pk:1")
    for op in LIST_OPS:
        for cursor in garbage:
            response = await client.get(op.path, params={"cursor": cursor})
            expect.problem(f"{op} [cursor={cursor!r}]", response, 400)
        response = await client.get(op.path, params={"cursor": "A" * 201})
        expect.problem(f"{op} [cursor of 201 characters]", response, 422)
    expect.verify(at_least=len(LIST_OPS))


async def test_cursor_beyond_any_row_number_is_400(client: httpx.AsyncClient) -> None:
    expect = Expect()
    for op in LIST_OPS:
        for raw in (b"pk:99999999999999999999", b"pk:9223372036854775808"):
            response = await client.get(op.path, params={"cursor": _cursor(raw)})
            expect.problem(f"{op} [cursor of {raw!r}]", response, 400)
    expect.verify(at_least=len(LIST_OPS))


def _bad_filter_values(schema: dict[str, Any]) -> list[str]:
    """Values a typed (non-free-text) query filter must refuse; [] for a free-text one."""
    options = [s for s in schema.get("anyOf", [schema]) if s.get("type") != "null"]
    if len(options) != 1:
        return []
    option = options[0]
    if "$ref" in option:
        option = _schema(option["$ref"].rsplit("/", 1)[-1])
    bad = f"{PHI} !"
    if option.get("format") == "date-time":
        return [bad, "2024-01-01T00:00:00", "2024-13-01T00:00:00Z", "1700000000x"]
    if option.get("format") == "date":
        return [bad, "2024-02-30", "01/04/1990"]
    if "enum" in option or option.get("type") in ("boolean", "integer", "number") or "pattern" in option:
        return [bad]
    return []


async def test_filter_of_wrong_type_is_422(client: httpx.AsyncClient) -> None:
    expect = Expect()
    typed = set()
    for op in LIST_OPS:
        for param in SPEC["paths"][op.path]["get"]["parameters"]:
            if param["in"] != "query" or param["name"] in ("limit", "cursor"):
                continue
            for value in _bad_filter_values(param["schema"]):
                typed.add(f"{op.kind}.{param['name']}")
                response = await client.get(op.path, params={param["name"]: value})
                expect.problem(f"{op} [{param['name']}={value!r}]", response, 422)
    assert "encounters.start_from" in typed and "participants.birth_date" in typed, typed
    expect.verify(at_least=len(typed))


# --- references, program, methods ---------------------------------------------------------------


def _reference_cases() -> list[tuple[Op, str, Any]]:
    """(route, field, value) for every field that names another record."""
    cases: list[tuple[Op, str, Any]] = []
    for rtype in ALL:
        for verb in ("create", "update"):
            op = OPS_BY_ID.get(f"{verb}_{rtype.stored.name}")
            if op is None:
                continue
            for field in rtype.references:
                if verb == "update" and field in rtype.frozen:
                    continue
                cases.append((op, field, PHI))
    cases += [
        (OPS_BY_ID["create_encounter"], "goal_ids", [PHI]),
        (OPS_BY_ID["update_encounter"], "goal_ids", [PHI]),
        (OPS_BY_ID["accept_referral"], "specialist_id", PHI),
        (OPS_BY_ID["amend_note"], "author_id", PHI),
    ]
    return cases


async def test_reference_to_a_missing_record_is_422(client: httpx.AsyncClient, world: World) -> None:
    cases = _reference_cases()
    assert len(cases) >= 10
    targets = {op.op_id: await prepare(client, world.ids, op) for op, _, _ in cases if op.is_action}
    expect = Expect()
    before = await snapshot(client)
    for op, field, value in cases:
        record_id = targets.get(op.op_id) or id_for(op, world.ids)
        body = sample_body(op, world.ids)
        assert body is not None
        response = await send(client, op, record_id, encode({**body, field: value}))
        expect.problem(f"{op} [{field} = {value!r}, no such record]", response, 422)
    expect.verify(at_least=len(cases))
    await assert_nothing_stored(client, before)


async def test_naming_a_program_other_than_the_tokens_is_403(client: httpx.AsyncClient, world: World) -> None:
    expect = Expect()
    before = await snapshot(client)
    for op in OPS:
        body = sample_body(op, world.ids)
        for code in (PHI, "no-such-program"):
            response = await send(
                client,
                op,
                id_for(op, world.ids),
                None if body is None else encode(body),
                headers={"PeerLink-Program": code},
            )
            expect.problem(f"{op} [PeerLink-Program: {code!r}]", response, 403)
    expect.verify(at_least=len(OPS))
    await assert_nothing_stored(client, before)


def _undeclared(path: str) -> list[str]:
    return sorted({"GET", "POST", "PUT", "PATCH", "DELETE"} - _methods(path))


async def test_undeclared_method_is_405(client: httpx.AsyncClient, world: World) -> None:
    expect = Expect()
    before = await snapshot(client)
    for path in PEER_PATHS:
        op = next(op for op in OPS if op.path == path)
        url = op.url(id_for(op, world.ids))
        for method in _undeclared(path):
            content = encode({"nickname": PHI}) if method in ("POST", "PUT", "PATCH") else None
            headers = {"content-type": JSON} if content else {}
            response = await client.request(method, url, content=content, headers=headers)
            expect.problem(f"{method} {path}", response, 405)
    expect.verify(at_least=len(PEER_PATHS))
    await assert_nothing_stored(client, before)


async def test_405_names_every_allowed_method(client: httpx.AsyncClient) -> None:
    expect = Expect()
    for path in PEER_PATHS:
        response = await client.delete(path.replace("{record_id}", str(uuid.uuid4())))
        allowed = {m.strip() for m in response.headers.get("allow", "").split(",") if m.strip()}
        expect.that(allowed >= _methods(path), f"DELETE {path}: Allow {sorted(allowed)}, declared {_methods(path)}")
    expect.verify(at_least=len(PEER_PATHS))
