"""The per-request layers made cheaper for the hot paths answer what they answered before: compression
(Starlette's GZipMiddleware, bypassed without gzip), the request id, the body limit, the access log,
the metrics, the Last-Modified date."""

from __future__ import annotations

import copy
import gzip
import io
import uuid
from datetime import UTC, datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any

import pytest
import structlog
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.types import Message, Receive, Scope, Send

from mappings.ids import fhir_id
from service.api.compression import Compression
from service.api.fhir.responses import base_url, http_date
from service.api.middleware import BodyLimitMiddleware, new_request_id
from service.logs import AssembledLogger, configure_logging
from service.store.tables import audit_log
from tests.factories import World

BIG = b"x" * 2000
SMALL = b"y" * 10


def answer(*headers: tuple[bytes, bytes], body: bytes = BIG, status: int = 200) -> list[Message]:
    """A response start with these headers, then one body message."""
    return [
        {"type": "http.response.start", "status": status, "headers": list(headers)},
        {"type": "http.response.body", "body": body},
    ]


def typed(content_type: bytes, *more: tuple[bytes, bytes], body: bytes = BIG, status: int = 200) -> list[Message]:
    return answer((b"content-type", content_type), *more, body=body, status=status)


ANSWERS: dict[str, list[Message]] = {
    "small": typed(b"application/fhir+json", body=SMALL),
    "large": typed(b"application/fhir+json"),
    "large, a Vary already": typed(b"text/html", (b"vary", b"Cookie"), (b"vary", b"Origin")),
    "streamed": [
        {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/x-ndjson")]},
        {"type": "http.response.body", "body": SMALL, "more_body": True},
        {"type": "http.response.body", "more_body": True},
        {"type": "http.response.body", "body": BIG},
    ],
    "excluded type": typed(b"image/png"),
    "excluded family": typed(b"video/mp4; x=1"),
    "grpc": typed(b"application/grpc+proto"),
    "already encoded": typed(b"text/plain", (b"content-encoding", b"br")),
    "partial": typed(b"text/plain", status=206),
    "no headers, no body": [{"type": "http.response.start", "status": 204}, {"type": "http.response.body"}],
    "trailers": [
        {"type": "http.response.start", "status": 200, "headers": [], "trailers": True},
        {"type": "http.response.body", "body": BIG},
        {"type": "http.response.trailers", "headers": [(b"x-check", b"1")]},
    ],
    "pathsend": [
        {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]},
        {"type": "http.response.pathsend", "path": "/tmp/a-file"},
    ],
}
ACCEPT_ENCODINGS: list[list[tuple[bytes, bytes]]] = [
    [],
    [(b"accept-encoding", b"br")],
    [(b"accept-encoding", b"gzip")],
    [(b"accept-encoding", b"br, gzip;q=0.5")],
    [(b"accept-encoding", b"GZIP")],
    [(b"accept-encoding", b"identity"), (b"accept-encoding", b"gzip")],  # the first one counts
]


async def _sent(middleware: Any, answer: list[Message], headers: list[tuple[bytes, bytes]]) -> list[Message]:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        for message in copy.deepcopy(answer):
            await send(message)

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(copy.deepcopy(message))

    scope = {"type": "http", "method": "GET", "path": "/", "headers": list(headers)}
    await middleware(app)(scope, receive, send)
    return sent


@pytest.mark.parametrize("name", sorted(ANSWERS))
async def test_compression_sends_what_starlettes_gzip_middleware_sends(name: str) -> None:
    for headers in ACCEPT_ENCODINGS:
        ours = await _sent(lambda app: Compression(app, minimum_size=1024), ANSWERS[name], headers)
        theirs = await _sent(lambda app: GZipMiddleware(app, minimum_size=1024), ANSWERS[name], headers)
        assert ours == theirs, (name, headers)


async def test_a_large_answer_is_gzipped_when_accepted_and_varies_either_way(client, program) -> None:
    await World(client).build()
    plain = await client.get("/fhir/Encounter", headers={"Accept-Encoding": "identity"})
    hot = await client.get("/fhir/Encounter", headers={"Accept-Encoding": "identity"})  # the hot path now
    zipped = await client.get("/fhir/Encounter", headers={"Accept-Encoding": "gzip"})
    assert len(plain.content) >= 1024
    assert plain.headers.get("content-encoding") is None and plain.headers["vary"] == "Accept-Encoding"
    assert hot.headers.get("content-encoding") is None and hot.headers["vary"] == "Accept-Encoding"
    assert zipped.headers["content-encoding"] == "gzip" and zipped.headers["vary"] == "Accept-Encoding"
    assert zipped.content == plain.content == hot.content  # httpx decodes it
    for response in (plain, hot, zipped):
        assert len(response.headers["x-request-id"]) == 32


async def test_a_read_is_compressed_alike_on_the_normal_and_the_hot_path(client, program) -> None:
    world = await World(client).build()
    patient = fhir_id(program.identifier_system, "participant", world.ids["participant"])
    seen = []
    for encoding in ("gzip", "gzip", "identity", "identity"):  # each: the normal path first, then the hot one
        async with client.stream("GET", f"/fhir/Patient/{patient}", headers={"Accept-Encoding": encoding}) as response:
            raw = b"".join([chunk async for chunk in response.aiter_raw()])
        assert response.status_code == 200
        compressed = response.headers.get("content-encoding") == "gzip"
        seen.append((compressed, response.headers.get("vary"), gzip.decompress(raw) if compressed else raw))
    assert seen[0] == seen[1] and seen[2] == seen[3]
    assert not seen[2][0] and seen[0][0] == (len(seen[0][2]) >= 1024)


async def test_hot_answers_carry_the_request_id_sent_or_a_new_one(client, program) -> None:
    world = await World(client).build()
    patient = fhir_id(program.identifier_system, "participant", world.ids["participant"])
    await client.get(f"/fhir/Patient/{patient}")
    mine = await client.get(f"/fhir/Patient/{patient}", headers={"X-Request-ID": "caller-id-0001"})
    assert mine.headers["x-request-id"] == "caller-id-0001"
    theirs = await client.get(f"/fhir/Patient/{patient}", headers={"X-Request-ID": "bad id!"})
    assert uuid.UUID(hex=theirs.headers["x-request-id"]).version == 4


def test_new_request_ids_are_uuid4_hex() -> None:
    ids = {new_request_id() for _ in range(200)}
    assert len(ids) == 200
    for value in ids:
        parsed = uuid.UUID(hex=value)
        assert parsed.hex == value and parsed.version == 4 and parsed.variant == uuid.RFC_4122


async def _through_body_limit(headers: list[tuple[bytes, bytes]], chunks: list[bytes], version: str) -> list[Any]:
    """What the app behind the limit receives, and what the client is sent."""
    got: list[Any] = []
    pending = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)]

    async def receive() -> Message:
        return pending.pop(0) if pending else {"type": "http.disconnect"}

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        got.append(await receive())
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            got.append(message["status"])

    scope = {"type": "http", "method": "POST", "path": "/x", "headers": headers, "http_version": version}
    await BodyLimitMiddleware(app, max_bytes=10)(scope, receive, send)
    return got


async def test_the_body_limit_passes_a_bodiless_request_and_refuses_a_streamed_oversize_one() -> None:
    empty = {"type": "http.request", "body": b"", "more_body": False}
    assert await _through_body_limit([], [b""], "1.1") == [empty, 200]
    streamed = [(b"transfer-encoding", b"chunked")]
    assert await _through_body_limit(streamed, [b"12345", b"678901"], "1.1") == [413]
    assert await _through_body_limit(streamed, [b"12345", b"67890"], "1.1") == [
        {"type": "http.request", "body": b"1234567890", "more_body": False},
        200,
    ]
    # HTTP/2 may carry a body without either header: it is still read and counted
    assert await _through_body_limit([], [b"12345", b"678901"], "2") == [413]
    assert await _through_body_limit([(b"content-length", b"11")], [b"x" * 11], "1.1") == [413]


async def test_the_access_log_follows_a_new_configuration(client, program, capsys) -> None:
    world = await World(client).build()
    patient = fhir_id(program.identifier_system, "participant", world.ids["participant"])
    try:
        configure_logging("WARNING", json=True)
        await client.get(f"/fhir/Patient/{patient}")
        assert '"event": "request"' not in capsys.readouterr().err
        configure_logging("INFO", json=True)
        await client.get(f"/fhir/Patient/{patient}", headers={"X-Request-ID": "logged-id-0001"})
        logged = capsys.readouterr().err
        assert '"event": "request"' in logged and '"request_id": "logged-id-0001"' in logged
        assert f"/fhir/Patient/{patient}" in logged and '"client_id": "program-admin"' in logged
    finally:
        structlog.reset_defaults()
    assert structlog.contextvars.get_contextvars() == {}


def test_an_assembled_logger_is_rebuilt_when_the_configuration_changes() -> None:
    out = io.StringIO()
    logger = AssembledLogger("peerlink.test")
    try:
        structlog.configure(
            processors=[structlog.processors.JSONRenderer()],
            wrapper_class=structlog.make_filtering_bound_logger(30),
            logger_factory=structlog.PrintLoggerFactory(file=out),
        )
        assert logger.info_logger() is None
        structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(20))
        found = logger.info_logger()
        assert found is not None and found is logger.info_logger()  # assembled once
        found.info("hello", n=1)
        assert out.getvalue() == '{"n": 1, "event": "hello"}\n'
    finally:
        structlog.reset_defaults()


async def test_requests_are_counted_per_route_and_status(client, program) -> None:
    world = await World(client).build()
    patient = fhir_id(program.identifier_system, "participant", world.ids["participant"])
    for _ in range(3):
        await client.get(f"/fhir/Patient/{patient}")
    await client.get("/fhir/Patient/no-such-patient")
    await client.get(f"/peer/v1/participants/{world.ids['participant']}")
    text = (await client.get("/metrics")).text
    read = 'method="GET",route="/fhir/{resource_type}/{resource_id}"'
    assert f'peerlink_http_requests_total{{{read},status="200"}} 3.0' in text
    assert f'peerlink_http_requests_total{{{read},status="404"}} 1.0' in text
    assert f"peerlink_http_request_seconds_count{{{read}}} 4.0" in text
    peer = 'method="GET",route="/peer/v1/participants/{record_id}",status="200"'
    assert f"peerlink_http_requests_total{{{peer}}} 1.0" in text


@given(
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 30)),
    st.sampled_from([None, UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))]),
)
def test_http_date_is_format_datetime(moment: datetime, zone: Any) -> None:
    value = moment.replace(tzinfo=zone)
    try:
        expected = format_datetime(value, usegmt=True)
    except ValueError:
        with pytest.raises(ValueError):
            http_date(value)
        return
    assert http_date(value) == expected


async def test_a_read_records_the_first_purpose_of_use_and_the_address_on_either_path(client, database, program):
    world = await World(client).build()
    patient = fhir_id(program.identifier_system, "participant", world.ids["participant"])
    headers = [("X-Purpose-Of-Use", "TREAT" * 20), ("X-Purpose-Of-Use", "HPAYMT")]
    for _ in range(2):  # the normal path, then the hot one
        assert (await client.get(f"/fhir/Patient/{patient}", headers=headers)).status_code == 200
    query = select(audit_log).where(audit_log.c.subtype == "read").order_by(audit_log.c.seq)
    async with database.read() as conn:
        reads = (await conn.execute(query)).all()
    assert len(reads) == 2
    for read in reads:
        assert read.detail["purpose"] == ("TREAT" * 20)[:64]
        assert read.address == "127.0.0.1"


@pytest.mark.parametrize(
    "scope",
    [
        {"scheme": "http", "server": ("127.0.0.1", 8080), "headers": [(b"host", b"127.0.0.1:8080")]},
        {"scheme": "https", "server": ("10.0.0.1", 443), "root_path": "/gw", "headers": []},
        {"scheme": "http", "server": None, "headers": [(b"host", b"bad host:xx")]},
        {"server": ["::1", 8000], "app_root_path": "/a/", "root_path": "/b", "headers": [(b"host", b"[::1]:8000")]},
        {"scheme": "http", "server": ["::1", 80], "headers": [(b"host", b"ex\xe9mple.org"), (b"host", b"other")]},
        {"scheme": "https", "server": ("h", 8443), "headers": [(b"host", b"example.org:443")]},
    ],
)
def test_the_fhir_base_is_starlettes_base_url(scope: dict[str, Any]) -> None:
    full = {"type": "http", "path": "/fhir/Patient", "query_string": b"name=x", **scope}
    for _ in range(2):  # made, then from the cache
        assert base_url(Request(full)) == str(Request(full).base_url).rstrip("/") + "/fhir"
