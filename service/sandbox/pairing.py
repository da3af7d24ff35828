"""The gateway and the sandbox EHR, introduced to each other (what `make run` / `peerlink up` does):

- the gateway is a client of the sandbox (client id ``peerlink``, its key in the gateway's keys
  folder): the EHR connection ``sandbox`` pushes sessions, notes, care teams, referral status and
  outcome assessments there and polls it for referrals every 15 minutes (or when asked);
- the sandbox hospital is a client of the gateway (``sandbox-hospital``, boundary = the hospital):
  an EHR team can pull, as the hospital, what consents open to it.

Both key pairs are made on first run and kept; running it again changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
from joserfc.jwk import RSAKey

from service.auth.backend_client import load_private_key, public_jwks
from service.auth.keys import write_private
from service.settings import Settings

from .config import ADMIN_HEADER, ADMIN_SECRET_FILE
from .seed import ORGANIZATION_SYSTEM, PEER_PROGRAM_ORG_ID

SANDBOX_PORT = 9090
SANDBOX_KEYS = Path("var/sandbox-keys")
CONNECTION = "sandbox"
GATEWAY_CLIENT_AT_SANDBOX = "peerlink"
HOSPITAL_CLIENT = "sandbox-hospital"
HOSPITAL_KEY = f"{ORGANIZATION_SYSTEM}|SGH"


@dataclass(frozen=True)
class Pairing:
    sandbox_root: str
    fhir_base: str
    connection_key: Path
    """The gateway's private key at the sandbox."""
    hospital_key: Path
    """The sandbox hospital's private key at the gateway."""


def key_pair(path: Path) -> Path:
    if not path.exists():
        write_private(path, RSAKey.generate_key(2048).as_pem(private=True))
    return path


def admin_secret(keys_dir: Path = SANDBOX_KEYS) -> str:
    return (keys_dir / ADMIN_SECRET_FILE).read_text().strip()


async def pair(settings: Settings, sandbox_root: str, secret: str, fhir_base: str | None = None) -> Pairing:
    fhir_base = fhir_base or f"{sandbox_root}/fhir"
    connection_key = key_pair(settings.keys_dir / "sandbox-connection.pem")
    hospital_key = key_pair(settings.keys_dir / "sandbox-hospital-client.pem")
    gateway_key = load_private_key(connection_key.read_bytes())
    async with httpx.AsyncClient(base_url=sandbox_root, timeout=10) as http:
        response = await http.post(
            "/admin/clients",
            headers={ADMIN_HEADER: secret},
            json={
                "client_id": GATEWAY_CLIENT_AT_SANDBOX,
                "scopes": "system/*.cruds",
                "jwks": public_jwks(gateway_key),
            },
        )
        if response.status_code not in (200, 201, 409):
            response.raise_for_status()
    # the record layer is loaded here, not with the module: `peerlink` imports this module (through the
    # sandbox's scenario commands) for every command it runs
    from service.auth import clients
    from service.exchange import connections
    from service.records.programs import get_by_code
    from service.store import Database

    database = Database(settings.database_url)
    now = datetime.now(UTC)
    try:
        async with database.transaction() as conn:
            program = await get_by_code(conn, settings.default_program)
            if await connections.find(conn, CONNECTION) is None:
                await connections.add(
                    conn,
                    program.id,
                    {
                        "name": CONNECTION,
                        "base_url": fhir_base,
                        "client_id": GATEWAY_CLIENT_AT_SANDBOX,
                        "key_file": str(connection_key.resolve()),
                        "organization": HOSPITAL_KEY,
                        "push": ["encounters", "notes", "care-teams", "referral-status", "assessments"],
                        "poll_referrals": True,
                        "poll_seconds": 900,
                        "task_owner": f"Organization/{PEER_PROGRAM_ORG_ID}",
                    },
                    now,
                )
            if await clients.find(conn, HOSPITAL_CLIENT) is None:
                hospital = load_private_key(hospital_key.read_bytes())
                await clients.add(
                    conn,
                    program.id,
                    HOSPITAL_CLIENT,
                    "system/*.rs",
                    now,
                    jwks=public_jwks(hospital),
                    organization=HOSPITAL_KEY,
                )
    finally:
        await database.dispose()
    return Pairing(sandbox_root, fhir_base, connection_key, hospital_key)
