"""Response compression: Starlette's GZipMiddleware for the requests that accept gzip; the others get
what its identity responder would send them, without the objects it builds per request.

Starlette answers a request whose Accept-Encoding (its first such header) does not name gzip through
an ``IdentityResponder``: the response start is held until the first body message, and a response of
``minimum_size`` bytes or more, or a streamed one, gets ``Vary: Accept-Encoding`` (unless it is already
encoded, partial content, or of an excluded media type, which pass untouched). :func:`identity_send`
does the same with the same messages, in the same order (tests/api/test_compression.py compares them).
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.middleware.gzip import GZipMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class Compression:
    """ASGI middleware: ``GZipMiddleware(app, minimum_size)`` as the client sees it."""

    def __init__(self, app: ASGIApp, minimum_size: int = 500) -> None:
        self.app = app
        self.gzip = GZipMiddleware(app, minimum_size=minimum_size)
        self.minimum_size = minimum_size
        self.excluded = frozenset(self.gzip.exclude_content_types)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"accept-encoding":  # the first one, as Starlette's Headers.get reads it
                if b"gzip" in value:
                    await self.gzip(scope, receive, send)
                    return
                break
        await self.app(scope, receive, identity_send(send, self.minimum_size, self.excluded))


def identity_send(send: Send, minimum_size: int, excluded: frozenset[str]) -> Send:
    """The send of Starlette's IdentityResponder (starlette.middleware.gzip), message for message."""
    initial: Message = {}
    started = False
    untouched = False

    async def send_identity(message: Message) -> None:
        nonlocal initial, started, untouched
        kind = message["type"]
        if kind == "http.response.start":
            initial = message
            encoded = False
            content_type = None
            for name, value in message.setdefault("headers", []):
                if name == b"content-encoding":
                    encoded = True
                elif name == b"content-type" and content_type is None:
                    content_type = value
            media_type = (content_type or b"").decode("latin-1").partition(";")[0].strip().lower()
            media_types = {media_type, media_type.partition("/")[0] + "/*"}
            if media_type.startswith("application/grpc+"):
                media_types.add("application/grpc")
            untouched = encoded or message["status"] == 206 or not media_types.isdisjoint(excluded)
            if untouched:
                await send(message)
        elif kind in ("http.response.body", "http.response.pathsend") and untouched:
            await send(message)
        elif kind == "http.response.body" and not started:
            started = True
            if len(message.get("body", b"")) >= minimum_size or message.get("more_body", False):
                MutableHeaders(raw=initial["headers"]).add_vary_header("Accept-Encoding")
            await send(initial)
            await send(message)
        elif kind == "http.response.body":
            message["body"] = message.get("body", b"")
            await send(message)
        elif kind in ("http.response.early_hint", "http.response.trailers"):
            await send(message)
        elif kind == "http.response.pathsend":
            await send(initial)
            await send(message)

    return send_identity
