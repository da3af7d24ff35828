"""A hospital EHR on loopback that refuses every record it is sent: it publishes its SMART token
endpoint and a CapabilityStatement (single PUT writes, no transaction), hands out tokens, and answers
every write 422 with an OperationOutcome, as an EHR whose business rules reject the peer program's
records would. The gateway's real worker delivers to it, and the refusals become dead letters."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

DIAGNOSTICS = "Peer support records are not accepted from this sender"
TYPES = ("Patient", "Practitioner", "PractitionerRole", "Organization", "Encounter", "DocumentReference", "CareTeam")


def _statement() -> dict[str, Any]:
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-01-01",
        "kind": "instance",
        "fhirVersion": "4.0.1",
        "format": ["json"],
        "rest": [{"mode": "server", "resource": [{"type": t, "interaction": [{"code": "update"}]} for t in TYPES]}],
    }


class _Handler(BaseHTTPRequestHandler):
    server_version = "RefusingEHR/1"
    writes: list[tuple[str, str]]

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return

    def _answer(self, status: int, body: dict[str, Any], media: str = "application/fhir+json") -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", media)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _drain(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)

    def do_GET(self) -> None:
        base = f"http://{self.headers['Host']}"
        if self.path.endswith("/.well-known/smart-configuration"):
            self._answer(
                200,
                {"token_endpoint": f"{base}/token", "grant_types_supported": ["client_credentials"]},
                "application/json",
            )
        elif self.path.endswith("/metadata"):
            self._answer(200, _statement())
        else:
            self._answer(
                404, {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "not-found"}]}
            )

    def do_POST(self) -> None:
        self._drain()
        if self.path == "/token":
            self._answer(
                200,
                {"access_token": "refusing", "token_type": "bearer", "expires_in": 300, "scope": "system/*.cruds"},
                "application/json",
            )
            return
        self._refuse()

    def do_PUT(self) -> None:
        self._drain()
        self._refuse()

    def _refuse(self) -> None:
        type(self).writes.append((self.command, self.path))
        issue = {"severity": "error", "code": "business-rule", "diagnostics": DIAGNOSTICS}
        self._answer(422, {"resourceType": "OperationOutcome", "issue": [issue]})


@contextmanager
def refusing_ehr() -> Iterator[tuple[str, list[tuple[str, str]]]]:
    """Yields the EHR's FHIR base URL and the list of (method, path) of the writes it refused."""
    writes: list[tuple[str, str]] = []
    handler = type("Handler", (_Handler,), {"writes": writes})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/fhir", writes
    finally:
        server.shutdown()
        server.server_close()
