"""`peerlink sandbox scenario ...`: scripted loops against a running gateway and sandbox EHR (what
`make run` starts), printing each step with the FHIR ids; exit status 1 when a step fails.

- ``referral-loop``: the clinic sends a referral at the EHR -> PeerLink polls and receives it -> the
  top match (``GET .../matches``) is assigned with its reason (``POST .../assign``), which accepts
  it -> two sessions with signed notes are recorded through the peer API
  -> they reach the EHR as Encounter + DocumentReference -> the clinic's Task shows completed with
  the sessions as output.
- ``care-team-sync``: a care-team member added here shows in the participant's CareTeam at the EHR.
- ``ehr-outage``: the EHR fails every request for a while; the sessions recorded meanwhile are
  retried and all arrive once it is back (none lost, none twice).
- ``outcomes-loop`` (``scenario_outcomes``): a referral, a baseline and a follow-up PHQ-9 recorded
  through the peer API under a consent naming ``assessments`` -> they reach the EHR as
  QuestionnaireResponse + Observations -> the completed referral's Task lists both scores as output.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import httpx
import typer

from service.auth.backend_client import fetch_token, private_key_file
from service.settings import get_settings

from .config import ADMIN_HEADER
from .pairing import CONNECTION, GATEWAY_CLIENT_AT_SANDBOX, HOSPITAL_KEY, SANDBOX_KEYS, admin_secret

scenario_app = typer.Typer(help="Scripted loops against the running gateway and sandbox EHR.", no_args_is_help=True)
HOSPITAL = {
    "name": "Sandbox General Hospital",
    "identifier": {"type": "other", "system": HOSPITAL_KEY.split("|")[0], "value": HOSPITAL_KEY.split("|")[1]},
}


CATEGORIES = ("encounters", "notes", "care-team", "demographics", "referrals")
"""What the scenarios' participants consent to share with the hospital (unless a scenario asks more)."""


class StepFailed(Exception):
    pass


@dataclass
class Loop:
    gateway: httpx.AsyncClient
    sandbox: httpx.AsyncClient
    ehr: httpx.AsyncClient
    secret: str
    timeout: float
    step_no: int = 0

    def step(self, text: str) -> None:
        self.step_no += 1
        typer.echo(f"[{self.step_no}] {text}")

    def done(self, text: str) -> None:
        typer.echo(f"      ok: {text}")

    async def call(self, http: httpx.AsyncClient, method: str, url: str, **kwargs: Any) -> Any:
        response = await http.request(method, url, **kwargs)
        if response.status_code >= 400:
            raise StepFailed(f"{method} {url} answered {response.status_code}: {response.text[:300]}")
        return response.json() if response.content else None

    async def admin(self, method: str, path: str, **kwargs: Any) -> Any:
        return await self.call(self.sandbox, method, path, headers={ADMIN_HEADER: self.secret}, **kwargs)

    async def until(self, what: str, probe: Callable[[], Awaitable[Any]]) -> Any:
        deadline = time.monotonic() + self.timeout
        while True:
            found = await probe()
            if found:
                return found
            if time.monotonic() > deadline:
                raise StepFailed(f"timed out after {self.timeout:g} s waiting for {what}")
            await asyncio.sleep(0.5)

    # --- helpers on the gateway -----------------------------------------------------------------------
    async def program_system(self) -> str:
        program = await self.call(self.gateway, "GET", "/peer/v1/program")
        return str(program["identifier_system"]).rstrip("/")

    async def specialist(self) -> dict[str, Any]:
        found = await self.call(self.gateway, "GET", "/peer/v1/specialists", params={"active": "true"})
        if not found["items"]:
            raise StepFailed("the program has no active peer specialist")
        specialist: dict[str, Any] = found["items"][0]
        return specialist

    async def ensure_consent(self, participant_id: str, categories: tuple[str, ...] = CATEGORIES) -> str:
        """A consent naming the hospital and at least ``categories``: the one on file, else a new one."""
        consents = await self.call(self.gateway, "GET", "/peer/v1/consents", params={"participant_id": participant_id})
        for consent in consents["items"]:
            recipient = (consent.get("recipient") or {}).get("identifier") or {}
            if (
                consent.get("revoked_at") is None
                and f"{recipient.get('system')}|{recipient.get('value')}" == HOSPITAL_KEY
                and set(categories) <= set(consent.get("categories") or [])
            ):
                return f"consent {consent['id']} (on file)"
        today = datetime.now(UTC).date()
        body = {
            "participant_id": participant_id,
            "recipient": HOSPITAL,
            "categories": list(categories),
            "period": {"start": str(today), "end": str(today + timedelta(days=365))},
        }
        created = await self.call(self.gateway, "POST", "/peer/v1/consents", json=body)
        return f"consent {created['id']} (recorded now)"

    async def session(
        self, participant_id: str, specialist_id: str, hours_ago: int, after: datetime | None = None
    ) -> tuple[str, str]:
        """A finished session with a signed note; ``after``: it starts that many hours after this moment."""
        start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=hours_ago)
        if after is not None:
            start = after.replace(microsecond=0) + timedelta(hours=hours_ago, minutes=1)
        encounter = await self.call(
            self.gateway,
            "POST",
            "/peer/v1/encounters",
            json={
                "participant_id": participant_id,
                "specialist_id": specialist_id,
                "start": start.isoformat(),
                "end": (start + timedelta(minutes=50)).isoformat(),
                "modality": "in-person",
                "support_categories": ["emotional", "informational"],
                "status": "finished",
            },
        )
        note = await self.call(
            self.gateway,
            "POST",
            "/peer/v1/notes",
            json={
                "encounter_id": encounter["id"],
                "author_id": specialist_id,
                "text": "Met for 50 minutes; talked through the week and next steps towards the goal.",
            },
        )
        await self.call(self.gateway, "POST", f"/peer/v1/notes/{note['id']}/sign")
        return encounter["id"], note["id"]

    def probe(self, resource_type: str, system: str, value: str) -> Callable[[], Awaitable[dict[str, Any] | None]]:
        return lambda: self.at_ehr(resource_type, system, value)

    async def at_ehr(self, resource_type: str, system: str, value: str) -> dict[str, Any] | None:
        bundle = await self.call(self.ehr, "GET", resource_type, params={"identifier": f"{system}|{value}"})
        entries = [
            e["resource"] for e in bundle.get("entry", []) if e.get("search", {}).get("mode", "match") == "match"
        ]
        if len(entries) > 1:
            raise StepFailed(f"the EHR holds {len(entries)} {resource_type} for one record (a duplicate)")
        return entries[0] if entries else None


async def _open(gateway_url: str | None, sandbox_url: str, step_seconds: float) -> Loop:
    settings = get_settings()
    gateway_url = gateway_url or settings.base_url
    demo_key = private_key_file(settings.keys_dir / "demo-client.pem")
    token = (await fetch_token(f"{gateway_url}/auth/token", "demo", demo_key))["access_token"]
    secret = admin_secret(SANDBOX_KEYS)
    sandbox = httpx.AsyncClient(base_url=sandbox_url, timeout=15)
    state = (await sandbox.get("/sandbox/state", headers={ADMIN_HEADER: secret})).json()
    urls = state["urls"]
    connection_key = private_key_file(settings.keys_dir / "sandbox-connection.pem")
    ehr_token = (await fetch_token(urls["token_url"], GATEWAY_CLIENT_AT_SANDBOX, connection_key))["access_token"]
    return Loop(
        gateway=httpx.AsyncClient(base_url=gateway_url, headers={"Authorization": f"Bearer {token}"}, timeout=30),
        sandbox=sandbox,
        ehr=httpx.AsyncClient(
            base_url=urls["fhir_base"].rstrip("/") + "/",
            headers={"Authorization": f"Bearer {ehr_token}", "Accept": "application/fhir+json"},
            timeout=15,
        ),
        secret=secret,
        timeout=step_seconds,
    )


async def clinic_referral(loop: Loop) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The clinic's referral at the EHR, polled, received and accepted: (what the clinic sent, the
    referral at PeerLink, the accepting peer specialist)."""
    loop.step("the clinic sends a referral to the peer program at the EHR")
    sent = await loop.admin("POST", "/sandbox/clinic/referral", json={})
    loop.done(f"ServiceRequest/{sent['service_request_id']}, Task/{sent['task_id']} for Patient/{sent['patient_id']}")

    loop.step(f"PeerLink polls the EHR (connection '{CONNECTION}') and receives it")
    await loop.call(loop.gateway, "POST", f"/admin/v1/ehr-connections/{CONNECTION}/poll")
    order = sent["identifier"]["value"]

    async def received() -> dict[str, Any] | None:
        found = await loop.call(loop.gateway, "GET", "/peer/v1/referrals", params={"limit": 500})
        return next(
            (r for r in found["items"] if any(i.get("value") == order for i in r.get("identifiers") or [])), None
        )

    referral = await loop.until("the referral at PeerLink", received)
    participant_id = referral["participant_id"]
    loop.done(f"referral {referral['id']} (status {referral['status']}) for participant {participant_id}")

    loop.step("the top match is assigned through the API with its reason, and accepts it")
    path = f"/peer/v1/referrals/{referral['id']}"
    await loop.call(loop.gateway, "POST", f"{path}/receive", json={"by": "intake"})
    ranked = await loop.call(loop.gateway, "GET", f"{path}/matches")
    if not ranked["matches"]:
        raise StepFailed("no peer specialist meets the referral's hard constraints")
    top = ranked["matches"][0]
    reason = f"top match: {top['summary']}"
    await loop.call(
        loop.gateway,
        "POST",
        f"{path}/assign",
        json={"specialist_id": top["specialist_id"], "reason": reason, "by": "intake"},
    )
    specialist = {"id": top["specialist_id"]}
    loop.done(f"accepted; peer specialist {specialist['id']} (rank 1 of {len(ranked['matches'])}, {reason})")
    return sent, referral, specialist


ClinicView = Callable[[Loop, dict[str, Any], dict[str, Any], list[str]], Awaitable[None]]
"""How the clinic learns the referral closed: (loop, what it sent, the referral, the Encounters delivered)."""


async def referral_loop(loop: Loop, clinic_view: ClinicView | None = None) -> None:
    """``clinic_view``: how the clinic learns the referral closed (default: reading its Task at the EHR,
    which PeerLink updated)."""
    sent, referral, specialist = await clinic_referral(loop)
    participant_id = referral["participant_id"]
    loop.step("the participant's consent to share with the hospital")
    loop.done(await loop.ensure_consent(participant_id))

    loop.step("two peer sessions with signed notes are recorded through the peer API")
    await loop.call(loop.gateway, "POST", f"/peer/v1/referrals/{referral['id']}/start", json={"by": "peer"})
    # sessions held since the referral count as its outputs
    requested = datetime.fromisoformat(referral["requested_at"])
    sessions = [await loop.session(participant_id, specialist["id"], hours, after=requested) for hours in (0, 1)]
    for encounter_id, note_id in sessions:
        loop.done(f"session {encounter_id}, note {note_id} (signed)")
    await loop.call(
        loop.gateway,
        "POST",
        f"/peer/v1/referrals/{referral['id']}/complete",
        json={"by": "peer", "outcome_summary": "Two sessions held; the participant is connected to a support group."},
    )

    loop.step("the sessions reach the EHR as Encounter + DocumentReference")
    system = await loop.program_system()
    delivered: list[str] = []
    for encounter_id, note_id in sessions:
        encounter = await loop.until(
            f"Encounter {encounter_id} at the EHR",
            loop.probe("Encounter", f"{system}/encounter", encounter_id),
        )
        note = await loop.until(
            f"DocumentReference {note_id} at the EHR",
            loop.probe("DocumentReference", f"{system}/note", note_id),
        )
        delivered.append(f"Encounter/{encounter['id']}")
        loop.done(f"Encounter/{encounter['id']}, DocumentReference/{note['id']}")

    await (clinic_view or task_at_the_ehr)(loop, sent, referral, delivered)


async def task_at_the_ehr(loop: Loop, sent: dict[str, Any], referral: dict[str, Any], delivered: list[str]) -> None:
    loop.step("the clinic's Task at the EHR shows completed with the sessions as output")

    async def closed() -> dict[str, Any] | None:
        task: dict[str, Any] = await loop.call(loop.ehr, "GET", f"Task/{sent['task_id']}")
        outputs = {o.get("valueReference", {}).get("reference") for o in task.get("output") or []}
        return task if task.get("status") == "completed" and set(delivered) <= outputs else None

    task = await loop.until("the Task to be completed with both sessions as output", closed)
    loop.done(f"Task/{task['id']} status {task['status']}, output {', '.join(delivered)}")


async def care_team_sync(loop: Loop) -> None:
    loop.step("a participant who consents to share their care team with the hospital")
    participants = await loop.call(loop.gateway, "GET", "/peer/v1/participants", params={"limit": 1})
    participant_id = participants["items"][0]["id"]
    loop.done(await loop.ensure_consent(participant_id))
    system = await loop.program_system()
    care_team_id = None

    async def team() -> dict[str, Any] | None:
        bundle = await loop.call(
            loop.ehr, "GET", "CareTeam", params={"identifier": f"{system}/care-team|{participant_id}"}
        )
        entries = [e["resource"] for e in bundle.get("entry", [])]
        return entries[0] if entries else None

    before = len((await team() or {}).get("participant") or [])
    loop.step("a clinician joins the care team through the peer API")
    today = datetime.now(UTC).date()
    member = await loop.call(
        loop.gateway,
        "POST",
        "/peer/v1/care-team-members",
        json={
            "participant_id": participant_id,
            "role": "therapist",
            "clinician": {"name": {"family": "Sandoval", "given": ["Rey"]}, "npi": "1234567893"},
            "period": {"start": str(today)},
        },
    )
    loop.done(f"care-team member {member['id']}")
    loop.step("the CareTeam at the EHR lists the new member")

    async def grown() -> dict[str, Any] | None:
        found = await team()
        return found if found and len(found.get("participant") or []) > before else None

    found = await loop.until("the CareTeam to list the new member", grown)
    care_team_id = found["id"]
    loop.done(f"CareTeam/{care_team_id} has {len(found['participant'])} members (was {before})")


async def ehr_outage(loop: Loop, outage_seconds: float = 6.0) -> None:
    loop.step(f"the EHR goes down (every request fails) for {outage_seconds:g} s")
    await loop.admin("PATCH", "/sandbox/knobs", json={"error_rate": 1.0})
    try:
        participants = await loop.call(loop.gateway, "GET", "/peer/v1/participants", params={"limit": 1})
        participant_id = participants["items"][0]["id"]
        await loop.ensure_consent(participant_id)
        specialist = await loop.specialist()
        loop.step("three sessions with signed notes are recorded meanwhile")
        sessions = [await loop.session(participant_id, specialist["id"], hours) for hours in (30, 20, 10)]
        loop.done(", ".join(f"session {e}" for e, _ in sessions))
        await asyncio.sleep(outage_seconds)
        metrics = await loop.call(loop.gateway, "GET", "/admin/v1/exchange/metrics")
        loop.done(f"queue during the outage: {metrics.get(CONNECTION)}")
    finally:
        loop.step("the EHR comes back")
        await loop.admin("PATCH", "/sandbox/knobs", json={"error_rate": 0.0})
    loop.step("every session and note arrives, once")
    system = await loop.program_system()
    for encounter_id, note_id in sessions:
        await loop.until(f"Encounter {encounter_id}", loop.probe("Encounter", f"{system}/encounter", encounter_id))
        await loop.until(f"DocumentReference {note_id}", loop.probe("DocumentReference", f"{system}/note", note_id))
    metrics = await loop.call(loop.gateway, "GET", "/admin/v1/exchange/metrics")
    loop.done(f"all {len(sessions)} sessions and notes delivered; connection: {metrics.get(CONNECTION)}")


def run_scenario(
    scenario: Callable[[Loop], Awaitable[None]], gateway: str | None, sandbox: str, timeout: float
) -> None:
    async def main() -> None:
        loop = await _open(gateway, sandbox, timeout)
        try:
            await scenario(loop)
        finally:
            for http in (loop.gateway, loop.sandbox, loop.ehr):
                await http.aclose()

    try:
        asyncio.run(main())
    except StepFailed as error:
        typer.echo(f"FAILED: {error}", err=True)
        raise typer.Exit(1) from None
    except (httpx.HTTPError, OSError, KeyError) as error:
        typer.echo(
            f"FAILED: {type(error).__name__}: {error} (are the gateway and the sandbox running? make run)", err=True
        )
        raise typer.Exit(1) from None
    typer.echo("scenario passed")


Gateway = Annotated[str | None, typer.Option(help="Gateway URL (default: PEERLINK_PUBLIC_URL or HOST:PORT).")]
Sandbox = Annotated[str, typer.Option(help="Sandbox EHR root URL.")]
Timeout = Annotated[float, typer.Option(help="Seconds to wait for each asynchronous step.")]


@scenario_app.command("care-team-sync")
def care_team_sync_command(
    gateway: Gateway = None, sandbox: Sandbox = "http://127.0.0.1:9090", timeout: Timeout = 60.0
) -> None:
    """A new care-team member shows in the CareTeam at the EHR."""
    run_scenario(care_team_sync, gateway, sandbox, timeout)


@scenario_app.command("ehr-outage")
def ehr_outage_command(
    gateway: Gateway = None, sandbox: Sandbox = "http://127.0.0.1:9090", timeout: Timeout = 120.0
) -> None:
    """The EHR fails for a while; what was recorded meanwhile is delivered once it is back."""
    run_scenario(ehr_outage, gateway, sandbox, timeout)
