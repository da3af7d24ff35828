"""The closed loop with outcome scores: a completed referral's update of the clinic's Task lists the
baseline and latest total-score Observations only when the participant's consent names the category
`assessments` and the EHR takes writes of QuestionnaireResponse and Observation; those are written
ahead of the Task. Otherwise the Task still completes, without them."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
import respx

from mappings.ids import fhir_id
from service.exchange.worker import Worker
from tests.api.test_assessments import phq9
from tests.exchange.support import HOSPITAL, TYPES, FakeEhr, add_connection, fast_settings
from tests.exchange.test_polling import referrals
from tests.factories import consent_body, create, specialist_body

ASSESSMENT_TYPES = ("QuestionnaireResponse", "Observation")


class OutcomeEhr(FakeEhr):
    """The fake EHR, also listing QuestionnaireResponse and Observation (updatable) when ``takes``."""

    def __init__(self, router: respx.MockRouter, takes: bool) -> None:
        super().__init__(router, update_types=(*TYPES, *ASSESSMENT_TYPES) if takes else TYPES)
        self.takes = takes

    def statement(self) -> dict[str, Any]:
        statement = super().statement()
        if self.takes:
            statement["rest"][0]["resource"] += [
                {"type": t, "interaction": [{"code": "read"}, {"code": "update"}]} for t in ASSESSMENT_TYPES
            ]
        return statement


async def _phq9(client, participant: str, specialist: str, value: int, completed: datetime) -> str:
    answers = [{"link_id": k, "value": v} for k, v in phq9([value] * 9).items()]
    body = {
        "participant_id": participant,
        "instrument": "phq-9",
        "answers": answers,
        "administered_by": "peer-specialist",
        "specialist_id": specialist,
        "completed_at": completed.isoformat(),
    }
    created = await client.post("/peer/v1/assessments", json=body)
    assert created.status_code == 201, created.text
    found: str = created.json()["id"]
    return found


async def _completed_with_scores(client, referral: dict[str, Any], categories: list[str]) -> tuple[str, list[str]]:
    """Accept, consent, two PHQ-9s, complete: the specialist, the assessments' ids."""
    specialist = (await create(client, "specialists", specialist_body()))["id"]
    steps: tuple[tuple[str, dict[str, str]], ...] = (
        ("receive", {}),
        ("accept", {"specialist_id": specialist}),
        ("start", {}),
    )
    for action, extra in steps:
        done = await client.post(f"/peer/v1/referrals/{referral['id']}/{action}", json={"by": "peer", **extra})
        assert done.status_code == 200, done.text
    participant = referral["participant_id"]
    await create(
        client,
        "consents",
        consent_body(participant, recipient={"name": "H", "identifier": HOSPITAL}, categories=categories),
    )
    # the Task lists the scores recorded under this referral: since it was requested
    requested = datetime.fromisoformat(referral["requested_at"])
    when = [(2, requested + timedelta(days=1)), (1, requested + timedelta(days=3))]
    ids = [await _phq9(client, participant, specialist, value, completed) for value, completed in when]
    done = await client.post(
        f"/peer/v1/referrals/{referral['id']}/complete", json={"by": "peer", "outcome_summary": "Better."}
    )
    assert done.status_code == 200, done.text
    return specialist, ids


@pytest.mark.parametrize(
    ("takes", "categories", "listed"),
    [
        (True, ["demographics", "assessments"], True),
        (True, ["demographics", "encounters"], False),  # no consent to share assessments
        (False, ["demographics", "assessments"], False),  # an EHR that takes no Observation writes
    ],
)
async def test_the_clinics_task_lists_the_scores_when_it_may(
    client, database, program, settings, tmp_path, takes, categories, listed
):
    with respx.mock(assert_all_called=False) as router:
        ehr = OutcomeEhr(router, takes)
        await add_connection(
            database, program, tmp_path, push=["referral-status"], poll_referrals=True, task_owner="Organization/peer"
        )
        worker = Worker(database, fast_settings(settings))
        task_id = ehr.seed_referral()
        assert await worker.poll_due(force="hospital") == 1
        (referral,) = await referrals(client)
        specialist, (baseline, latest) = await _completed_with_scores(client, referral, categories)
        await worker.drain()
        if listed:  # a follow-up after the referral completed: the Task's latest score follows
            first = ehr.resources[f"Task/{task_id}"]["meta"]["versionId"]
            later = await _phq9(
                client,
                referral["participant_id"],
                specialist,
                0,
                datetime.fromisoformat(referral["requested_at"]) + timedelta(days=5),
            )
            await worker.drain()
            task = ehr.resources[f"Task/{task_id}"]
            assert task["meta"]["versionId"] != first and task["status"] == "completed"
            latest_total = fhir_id(program.identifier_system, "assessment-observation", later + "/total")
            assert task["output"][-2]["valueReference"]["reference"] == f"Observation/{latest_total}"
            latest = later

    task = ehr.resources[f"Task/{task_id}"]
    assert task["status"] == "completed"
    system = program.identifier_system
    totals = [f"Observation/{fhir_id(system, 'assessment-observation', a + '/total')}" for a in (baseline, latest)]
    outputs = [o["valueReference"]["reference"] for o in task.get("output") or [] if "valueReference" in o]
    assert (outputs == totals) is listed
    held = {k for k in ehr.resources if k.startswith(ASSESSMENT_TYPES)}
    if listed:  # written ahead of the Task: both assessments, answers and scores
        assert set(totals) <= held and len(held) == 3 * (1 + 11)
        assert all(ehr.resources[t]["derivedFrom"][0]["reference"].startswith("QuestionnaireResponse/") for t in totals)
    else:
        assert held == set()
