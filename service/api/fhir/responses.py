"""FHIR responses: stored bytes out as application/fhir+json, format negotiation, _pretty."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime
from functools import lru_cache
from typing import Annotated, Any

import orjson
from fastapi import Depends, Query, Request
from fastapi.responses import Response
from starlette.datastructures import URL

from service.domain.errors import NotFound, PeerLinkError
from service.fhir.search_params import SEARCH_PARAMS

FHIR_JSON = "application/fhir+json; charset=utf-8"
_JSON_FORMATS = {"json", "application/json", "application/fhir+json", "fhir+json", "application/json+fhir"}


class NotAcceptable(PeerLinkError):
    status = 406
    fhir_code = "not-supported"
    title = "Not acceptable"


async def negotiate(
    request: Request,
    format_: Annotated[str | None, Query(alias="_format", description="json or application/fhir+json")] = None,
    pretty: Annotated[bool, Query(alias="_pretty", description="Indent the JSON")] = False,
) -> bool:
    """Refuse formats we do not produce (XML, Turtle); returns whether to pretty-print."""
    if format_ is not None and format_.split(";")[0].strip().lower() not in _JSON_FORMATS:
        raise NotAcceptable("only JSON is served: _format=json or application/fhir+json")
    if not acceptable(request.headers.get("accept", "")):
        raise NotAcceptable("only application/fhir+json (or application/json) is served")
    return pretty


def acceptable(accept: str) -> bool:
    """Whether an Accept header lets us answer with FHIR JSON (no header: anything goes)."""
    if not accept:
        return True
    offered = [part.split(";")[0].strip().lower() for part in accept.split(",")]
    return any(o in _JSON_FORMATS or o in ("*/*", "application/*") for o in offered)


PrettyDep = Annotated[bool, Depends(negotiate)]


def resource_type_of(resource_type: str) -> str:
    if resource_type not in SEARCH_PARAMS:
        raise NotFound(f"this server does not serve {resource_type[:40]} resources")
    return resource_type


def fhir_response(
    body: bytes,
    *,
    pretty: bool = False,
    status: int = 200,
    version_id: int | None = None,
    last_updated: datetime | None = None,
    location: str | None = None,
) -> Response:
    if pretty:
        body = orjson.dumps(orjson.loads(body), option=orjson.OPT_INDENT_2)
    headers: dict[str, str] = {}
    if version_id is not None:
        headers["ETag"] = f'W/"{version_id}"'
    if last_updated is not None:
        headers["Last-Modified"] = http_date(last_updated)
    if location is not None:
        headers["Location"] = location
    return Response(content=body, status_code=status, media_type=FHIR_JSON, headers=headers)


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def http_date(moment: datetime) -> str:
    """``email.utils.format_datetime(moment, usegmt=True)`` (Sun, 06 Dec 2026 14:51:45 GMT), cheaper."""
    if moment.tzinfo is not UTC:  # the same answer, or the same ValueError
        return format_datetime(moment, usegmt=True)
    return "%s, %02d %s %04d %02d:%02d:%02d GMT" % (  # noqa: UP031 (faster than an f-string here)
        _DAYS[moment.weekday()],
        moment.day,
        _MONTHS[moment.month - 1],
        moment.year,
        moment.hour,
        moment.minute,
        moment.second,
    )


def base_url(request: Request) -> str:
    """``str(request.base_url).rstrip("/") + "/fhir"``, made once per scheme, server, Host and root path."""
    scope = request.scope
    host = None
    for name, value in scope["headers"]:
        if name == b"host":  # the first one, as Starlette's URL reads it
            host = value
            break
    server = scope.get("server")
    root_path = scope.get("app_root_path", scope.get("root_path", ""))
    return _fhir_base(scope.get("scheme", "http"), None if server is None else tuple(server), host, root_path)


@lru_cache(maxsize=256)
def _fhir_base(scheme: str, server: tuple[Any, ...] | None, host: bytes | None, root_path: str) -> str:
    """Starlette's Request.base_url from these parts (the cache is bounded: Host is the client's)."""
    scope = {
        "type": "http",
        "scheme": scheme,
        "server": server,
        "path": root_path if root_path.endswith("/") else root_path + "/",
        "query_string": b"",
        "root_path": root_path,
        "headers": [] if host is None else [(b"host", host)],
    }
    return str(URL(scope=scope)).rstrip("/") + "/fhir"
