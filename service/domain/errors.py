"""The one exception hierarchy of PeerLink.

Each class knows its HTTP status and its FHIR ``OperationOutcome.issue.code``; the API layer turns
any of them into problem+json or an OperationOutcome in exactly one place. Messages are written by
us and never carry record contents (no PHI).
"""

from __future__ import annotations

from typing import Any, ClassVar


class PeerLinkError(Exception):
    status: ClassVar[int] = 400
    fhir_code: ClassVar[str] = "invalid"
    title: ClassVar[str] = "Bad request"

    def __init__(self, detail: str, *, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors or []


class BadRequest(PeerLinkError):
    status = 400
    fhir_code = "invalid"
    title = "Bad request"


class Unauthorized(PeerLinkError):
    """No bearer token, or one that does not verify (answered with WWW-Authenticate: Bearer)."""

    status = 401
    fhir_code = "login"
    title = "Unauthorized"


class Forbidden(PeerLinkError):
    """A valid token whose scopes or data boundary do not cover the request."""

    status = 403
    fhir_code = "forbidden"
    title = "Forbidden"


class NotFound(PeerLinkError):
    status = 404
    fhir_code = "not-found"
    title = "Not found"


class MethodNotAllowed(PeerLinkError):
    status = 405
    fhir_code = "not-supported"
    title = "Method not allowed"


class Conflict(PeerLinkError):
    status = 409
    fhir_code = "conflict"
    title = "Conflict"


class IllegalTransition(Conflict):
    title = "Illegal state transition"


class ImmutableRecord(Conflict):
    title = "Record is immutable"


class PreconditionFailed(PeerLinkError):
    status = 412
    fhir_code = "conflict"
    title = "Precondition failed"


class PayloadTooLarge(PeerLinkError):
    status = 413
    fhir_code = "too-costly"
    title = "Payload too large"


class UnsupportedMediaType(PeerLinkError):
    status = 415
    fhir_code = "not-supported"
    title = "Unsupported media type"


class RuleViolation(PeerLinkError):
    """A domain invariant does not hold (end before start, expired certification, ...)."""

    status = 422
    fhir_code = "business-rule"
    title = "Domain rule violated"


class InvalidResource(PeerLinkError):
    """Well-formed JSON of the right type, but not a valid resource we can map (FHIR)."""

    status = 422
    fhir_code = "invalid"
    title = "Invalid resource"


class PatchFailed(PeerLinkError):
    """A JSON Patch that is well-formed but cannot be applied (missing path, failed test)."""

    status = 422
    fhir_code = "processing"
    title = "Patch cannot be applied"


class Unavailable(PeerLinkError):
    status = 503
    fhir_code = "transient"
    title = "Service unavailable"
