"""The token endpoint's HTTP edges, shared by the gateway's and the sandbox's: the form a token
request must be (``application/x-www-form-urlencoded``, each parameter once) and the RFC 6749
error answer (never cached; a ``WWW-Authenticate`` challenge on a 401)."""

from __future__ import annotations

from urllib.parse import parse_qsl

from .assertion import OAuthError

FORM = "application/x-www-form-urlencoded"
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
MAX_FIELDS = 20


def token_form(content_type: str | None, body: bytes) -> dict[str, str]:
    """The parameters of a token request; raises OAuthError ``invalid_request`` when it is no form."""
    media_type = (content_type or "").split(";")[0].strip().lower()
    if media_type != FORM:
        raise OAuthError("invalid_request", f"send the token request as {FORM}")
    try:
        fields = parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=MAX_FIELDS)
    except (UnicodeDecodeError, ValueError):
        raise OAuthError("invalid_request", "the body is not a valid form") from None
    form = dict(fields)
    if len(form) != len(fields):
        raise OAuthError("invalid_request", "a parameter is repeated")
    return form


def error_answer(error: OAuthError) -> tuple[dict[str, str], int, dict[str, str]]:
    """(body, status, headers) of the answer to a refused token request."""
    headers = {**NO_STORE, **({"WWW-Authenticate": "Bearer"} if error.status == 401 else {})}
    return {"error": error.error, "error_description": error.description}, error.status, headers
