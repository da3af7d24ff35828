"""Cross-cutting request handling, as plain ASGI: request id, access log, body-size limit."""

from __future__ import annotations

import os
import re
import time
from typing import Any

import orjson
import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api.problems import error_document
from service.logs import AssembledLogger
from service.metrics import Metrics

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._\-]{8,64}$")
log = AssembledLogger("peerlink.access")
_UUID4_CLEAR = ~((0xC000 << 48) | (0xF000 << 64))
_UUID4_SET = (0x8000 << 48) | (4 << 76)


def new_request_id() -> str:
    """``uuid.uuid4().hex`` (random, version 4, RFC 4122 variant) without building the UUID object."""
    return "%032x" % ((int.from_bytes(os.urandom(16)) & _UUID4_CLEAR) | _UUID4_SET)


def route_template(scope: Scope) -> str:
    """The matched route as a template (/peer/v1/participants/{record_id}): a bounded label, no ids."""
    if scope.get("route") is None:
        return "unmatched"
    values = {str(v): k for k, v in (scope.get("path_params") or {}).items()}
    if not values:
        return str(scope["path"])
    return "/".join([f"{{{values[part]}}}" if part in values else part for part in str(scope["path"]).split("/")])


class RequestContextMiddleware:
    """Gives every request an id (X-Request-ID, ours unless the caller sent a sane one) and logs it."""

    def __init__(self, app: ASGIApp, metrics: Metrics | None = None) -> None:
        self.app = app
        self.metrics = metrics
        self._counters: dict[tuple[str, str, int], Any] = {}
        """(method, route template, status) -> its child of metrics.requests (labels() once)."""
        self._timers: dict[tuple[str, str], Any] = {}
        """(method, route template) -> its child of metrics.latency."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        offered = b""
        for name, value in scope.get("headers") or ():
            if name == b"x-request-id":  # the last one, as a dict of the headers would have it
                offered = value
        offered_id = offered.decode("latin-1")
        request_id = offered_id if _REQUEST_ID.match(offered_id) else new_request_id()
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status = 500
        id_header = (b"x-request-id", request_id.encode())

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], id_header]
            await send(message)

        bound = structlog.contextvars.bind_contextvars(request_id=request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            try:
                elapsed = time.perf_counter() - started
                logger = log.info_logger()
                if logger is not None:
                    state = scope.get("state", {})
                    access = state.get("access")
                    # The path holds only our own record ids; the query string (names, identifiers) is left out.
                    logger.info(
                        "request",
                        method=scope["method"],
                        path=scope["path"],
                        status=status,
                        duration_ms=round(elapsed * 1000, 2),
                        client_id=access.client_id if access is not None else state.get("client_id"),
                    )
                if self.metrics is not None:
                    self._measure(scope["method"], route_template(scope), status, elapsed)
            finally:
                structlog.contextvars.reset_contextvars(**bound)

    def _measure(self, method: str, route: str, status: int, elapsed: float) -> None:
        assert self.metrics is not None
        counter = self._counters.get((method, route, status))
        if counter is None:
            counter = self._counters[(method, route, status)] = self.metrics.requests.labels(method, route, str(status))
        timer = self._timers.get((method, route))
        if timer is None:
            timer = self._timers[(method, route)] = self.metrics.latency.labels(method, route)
        counter.inc()
        timer.observe(elapsed)


_HTTP1 = frozenset({"1.0", "1.1"})


class BodyLimitMiddleware:
    """Refuses bodies over ``max_bytes`` with 413, whether announced by Content-Length or streamed.

    A streamed body is read here, up to the limit, before the application sees it: refusing it
    half-way through the application's own body parsing would surface as a parse error instead.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = None
        chunked = False
        for name, value in scope.get("headers") or ():
            if name == b"content-length":  # the last one, as a dict of the headers would have it
                length = value
            elif name == b"transfer-encoding":
                chunked = True
        if length is None and not chunked and scope.get("http_version") in _HTTP1:
            # HTTP/1.x: a request with neither Content-Length nor Transfer-Encoding has no body
            await self.app(scope, receive, send)
            return
        if length is not None:
            if not length.isdigit() or int(length) > self.max_bytes:
                await self._refuse(scope, send)
                return
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._refuse(scope, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, send: Send) -> None:
        await _send_problem(
            scope, send, 413, "Payload too large", f"the request body is larger than {self.max_bytes} bytes"
        )


async def _send_problem(scope: Scope, send: Send, status: int, title: str, detail: str) -> None:
    body, media_type = error_document(
        scope.get("path", ""), status, detail, scope.get("state", {}).get("request_id"), title=title
    )
    payload = orjson.dumps(body)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", media_type.encode()), (b"content-length", str(len(payload)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": payload})
