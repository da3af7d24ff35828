"""The hot FHIR paths, read by id and type-level search (GET), answered without FastAPI's routing and
dependency solving, which cost about half of a read's time (profiled under the bench's load).

Only what the full route would answer 200 with the same checks is answered here; everything else goes
down the normal stack, unchanged, which then answers (or refuses) it as always:
- a path is taken only for a resource type the router itself has sent to ``fhir_read`` or
  ``fhir_search`` before (learned from ``scope["route"]`` after the normal stack handled it), so the
  routing of the specific routes (Group, Subscription, AuditEvent, _history, $export) stays the router's;
- the client is the one the normal path already authenticated for this very token, while that still
  holds (service.api.access.known_access: until the token expires, and at most CLIENT_CACHE_SECONDS
  after its registration was read, so a disabled client's token stops within that, as on the normal
  path); a token not seen yet, or due a re-check, goes down the normal path;
- the scope check is the route rule's (read or search of the type); a refusal goes the normal way (403);
- the program is the cached one the normal path resolved (a PeerLink-Program header naming another
  goes the normal way: 403);
- a read with a query string (``_format``, ``_pretty``) or a search with ``_format``/``_pretty``
  goes the normal way;
- the handler is the route's own (read_resource, the search's ``_search``), so the audit record is
  written, and durable, before the answer, exactly as there; if it raises (not found, a bad search
  parameter, the audit log unavailable) nothing has been answered, and the request goes down the
  normal path, which answers the error as always.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from service.api.access import ALL_PERMISSIONS, Access, known_access
from service.api.deps import known_program
from service.auth.scopes import Interaction
from service.fhir.search_params import SEARCH_PARAMS

from .read import FHIR_ID, read_resource
from .responses import acceptable
from .search import search_resources

PREFIX = "/fhir/"
HOT_ROUTES = {"fhir_read": 2, "fhir_search": 1}
"""operation id -> the number of path segments after /fhir/ of its route."""
_ID = re.compile(FHIR_ID)


_WANTED = frozenset({b"accept", b"authorization", b"peerlink-program"})
_acceptable = lru_cache(maxsize=256)(acceptable)
"""Whether an Accept header lets us answer (a few distinct values in practice; the cache is bounded)."""


def _headers(scope: Scope) -> dict[bytes, str]:
    """The request headers the hot paths read, each its first value (as Starlette's Headers.get)."""
    found: dict[bytes, str] = {}
    for name, value in scope["headers"]:
        if name in _WANTED and name not in found:
            found[name] = value.decode("latin-1")
    return found


class HotPaths:
    """ASGI middleware, innermost: the hot paths straight to their handlers (see the module)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.routes: dict[tuple[str, int], Any] = {}
        """(resource type, segments) -> the route the router chose for it."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] != "http" or scope["method"] != "GET" or not path.startswith(PREFIX) or scope.get("root_path"):
            await self.app(scope, receive, send)
            return
        parts = path[len(PREFIX) :].split("/")
        key = (parts[0], len(parts))
        route = self.routes.get(key)
        response = None
        if route is not None and self._eligible(scope, parts):
            response = await self._answer(scope, receive, route, parts)
        if response is not None:
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)
        self._learn(scope, parts, key)

    @staticmethod
    def _eligible(scope: Scope, parts: list[str]) -> bool:
        query: bytes = scope.get("query_string", b"")
        if len(parts) == 2:
            return not query and _ID.match(parts[1]) is not None
        return b"_format" not in query and b"_pretty" not in query

    def _learn(self, scope: Scope, parts: list[str], key: tuple[str, int]) -> None:
        route = scope.get("route")
        segments = HOT_ROUTES.get(getattr(route, "operation_id", None) or "")
        if segments == len(parts) and parts[0] in SEARCH_PARAMS and (segments == 1 or _ID.match(parts[1])):
            self.routes[key] = route

    async def _answer(self, scope: Scope, receive: Receive, route: Any, parts: list[str]) -> Response | None:
        """The route's answer, or None: the normal path is to answer (nothing has been sent or written)."""
        state = scope["app"].state
        headers = _headers(scope)
        if not _acceptable(headers.get(b"accept", "")):
            return None
        resource_type = parts[0]
        if state.settings.auth_required:
            scheme, _, token = headers.get(b"authorization", "").partition(" ")
            access = known_access(state.security, token.strip()) if scheme.lower() == "bearer" else None
            if access is None:
                return None
            interaction = Interaction.READ if len(parts) == 2 else Interaction.SEARCH
            if not access.permissions.allows(resource_type, interaction):
                return None
        else:
            access = Access(None, None, None, ALL_PERMISSIONS)
        named = headers.get(b"peerlink-program")
        program = known_program(state.program_cache, access.program_id or named or state.settings.default_program)
        if program is None or (named is not None and named != program.code):
            return None
        scope.setdefault("state", {})["access"] = access
        scope["route"] = route
        scope["path_params"] = dict(zip(("resource_type", "resource_id"), parts, strict=False))
        request = Request(scope, receive)
        try:
            if len(parts) == 2:
                return await read_resource(request, access, state.database, program.id, resource_type, parts[1])
            items = request.query_params.multi_items()
            return await search_resources(request, resource_type, program.id, access, state.database, False, items)
        except Exception:  # answered by the normal path, which raises it again and answers it as always
            del scope["state"]["access"]
            return None
