"""Cross-cutting request handling, as plain ASGI: request id, access log, body-size limit."""

from __future__ import annotations

import re
import time
import uuid

import orjson
import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api.problems import error_document
from service.metrics import Metrics

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._\-]{8,64}$")
log = structlog.get_logger("peerlink.access")


def route_template(scope: Scope) -> str:
    """The matched route as a template (/peer/v1/participants/{record_id}): a bounded label, no ids."""
    if scope.get("route") is None:
        return "unmatched"
    values = {str(v): k for k, v in (scope.get("path_params") or {}).items()}
    return "/".join(f"{{{values[part]}}}" if part in values else part for part in str(scope["path"]).split("/"))


class RequestContextMiddleware:
    """Gives every request an id (X-Request-ID, ours unless the caller sent a sane one) and logs it."""

    def __init__(self, app: ASGIApp, metrics: Metrics | None = None) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        offered = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = offered if _REQUEST_ID.match(offered) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        with structlog.contextvars.bound_contextvars(request_id=request_id):
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                elapsed = time.perf_counter() - started
                state = scope.get("state", {})
                access = state.get("access")
                # The path holds only our own record ids; the query string (names, identifiers) is left out.
                log.info(
                    "request",
                    method=scope["method"],
                    path=scope["path"],
                    status=status,
                    duration_ms=round(elapsed * 1000, 2),
                    client_id=access.client_id if access is not None else state.get("client_id"),
                )
                if self.metrics is not None:
                    route = route_template(scope)
                    self.metrics.requests.labels(scope["method"], route, str(status)).inc()
                    self.metrics.latency.labels(scope["method"], route).observe(elapsed)


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
        length = dict(scope.get("headers") or []).get(b"content-length")
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
