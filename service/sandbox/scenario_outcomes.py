"""`peerlink sandbox scenario outcomes-loop`: the closed loop with outcome measurement.

The clinic's referral at the EHR is polled, received and accepted; the participant consents to share
their assessments with the hospital; a baseline PHQ-9, a session and a follow-up PHQ-9 are recorded
through the peer API; the referral is completed -> each assessment reaches the EHR as a
QuestionnaireResponse and its Observations (panel, total, items) -> the clinic's Task shows
completed with the baseline and latest total-score Observations as output, beside the session.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from .scenarios import (
    CATEGORIES,
    Gateway,
    Loop,
    Sandbox,
    StepFailed,
    Timeout,
    clinic_referral,
    run_scenario,
    scenario_app,
)

INSTRUMENT = "phq-9"
ASSESSMENT_KIND = "assessment"
OBSERVATION_KIND = "assessment-observation"


async def _assess(loop: Loop, participant_id: str, specialist_id: str, value: int, when: datetime) -> dict[str, Any]:
    """A PHQ-9 with every item answered ``value``, given by the peer specialist."""
    instruments = await loop.call(loop.gateway, "GET", "/peer/v1/instruments")
    found = [i for i in instruments["items"] if i["id"] == INSTRUMENT]
    if not found:
        raise StepFailed(f"the gateway has no instrument {INSTRUMENT}")
    answers = [{"link_id": item["link_id"], "value": value} for item in found[-1]["items"] if item["required"]]
    body = {
        "participant_id": participant_id,
        "instrument": INSTRUMENT,
        "answers": answers,
        "administered_by": "peer-specialist",
        "specialist_id": specialist_id,
        "completed_at": when.isoformat(),
    }
    record: dict[str, Any] = await loop.call(loop.gateway, "POST", "/peer/v1/assessments", json=body)
    return record


async def outcomes_loop(loop: Loop) -> None:
    sent, referral, specialist = await clinic_referral(loop)
    participant_id = referral["participant_id"]
    loop.step("the participant consents to share their assessments with the hospital")
    loop.done(await loop.ensure_consent(participant_id, (*CATEGORIES, "assessments")))

    loop.step("a baseline PHQ-9, a peer session and a follow-up PHQ-9 are recorded through the peer API")
    await loop.call(loop.gateway, "POST", f"/peer/v1/referrals/{referral['id']}/start", json={"by": "peer"})
    requested = datetime.fromisoformat(referral["requested_at"])
    baseline = await _assess(loop, participant_id, specialist["id"], 2, requested + timedelta(minutes=1))
    encounter_id, _ = await loop.session(participant_id, specialist["id"], 1, after=requested)
    latest = await _assess(loop, participant_id, specialist["id"], 1, requested + timedelta(hours=2))
    loop.done(
        f"baseline {baseline['id']} (total {baseline['total']}), session {encounter_id}, "
        f"follow-up {latest['id']} (total {latest['total']})"
    )
    await loop.call(
        loop.gateway,
        "POST",
        f"/peer/v1/referrals/{referral['id']}/complete",
        json={"by": "peer", "outcome_summary": "PHQ-9 down from baseline; attends a weekly group."},
    )

    loop.step("each assessment reaches the EHR as QuestionnaireResponse + Observations")
    system = await loop.program_system()
    totals: list[str] = []
    for record in (baseline, latest):
        response = await loop.until(
            f"the QuestionnaireResponse of assessment {record['id']} at the EHR",
            loop.probe("QuestionnaireResponse", f"{system}/{ASSESSMENT_KIND}", record["id"]),
        )
        total = await loop.until(
            f"the total-score Observation of assessment {record['id']} at the EHR",
            loop.probe("Observation", f"{system}/{OBSERVATION_KIND}", f"{record['id']}/total"),
        )
        if total.get("valueInteger") != record["total"]:
            raise StepFailed(f"the EHR's total score is {total.get('valueInteger')}, not {record['total']}")
        derived = [d.get("reference", "") for d in total.get("derivedFrom") or []]
        if not any(d.endswith(f"QuestionnaireResponse/{response['id']}") for d in derived):
            raise StepFailed("the total-score Observation is not derived from its QuestionnaireResponse")
        observations = await loop.call(
            loop.ehr, "GET", "Observation", params={"derived-from": f"QuestionnaireResponse/{response['id']}"}
        )
        count = len(observations.get("entry") or [])
        totals.append(f"Observation/{total['id']}")
        loop.done(f"QuestionnaireResponse/{response['id']} with {count} Observations, total {total['valueInteger']}")

    loop.step("the clinic's Task at the EHR shows completed with the baseline and latest scores as output")

    async def closed() -> dict[str, Any] | None:
        task: dict[str, Any] = await loop.call(loop.ehr, "GET", f"Task/{sent['task_id']}")
        outputs = {o.get("valueReference", {}).get("reference") for o in task.get("output") or []}
        return task if task.get("status") == "completed" and set(totals) <= outputs else None

    task = await loop.until("the Task to list both scores as output", closed)
    loop.done(f"Task/{task['id']} status {task['status']}, output {', '.join(totals)}")


@scenario_app.command("outcomes-loop")
def outcomes_loop_command(
    gateway: Gateway = None, sandbox: Sandbox = "http://127.0.0.1:9090", timeout: Timeout = 60.0
) -> None:
    """Referral -> baseline and follow-up PHQ-9 -> delivered as FHIR -> the Task lists the scores."""
    run_scenario(outcomes_loop, gateway, sandbox, timeout)
