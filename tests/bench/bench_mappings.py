"""Mapping throughput: PeerLink's way against the naive way and the serializer floor, same run.

    python -m tests.bench.bench_mappings [N]

For each kind, N records are mapped to validated FHIR JSON bytes three ways:
- ours:  to_fhir (builds the dict, validates it once with fhir.resources) + orjson.dumps;
- naive: fhir.resources model_validate of the same dict + the model's own model_dump_json
         (the mapping's dict building is not even counted against it);
- floor: orjson.dumps of the final dict (the cost of bytes alone).
It prints resources/s for each and the ratio ours/naive (target: >= 2). An assessment maps to a set
(its QuestionnaireResponse, the panel, total and item Observations): the sets/s are printed too.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import Any

import orjson

from mappings import (
    assessment,
    care_team,
    consent,
    encounter,
    goal,
    note,
    organization,
    patient,
    practitioner,
    referral,
)
from mappings.context import MappingContext
from mappings.models import model_class
from service.domain import (
    CareTeamMember,
    Consent,
    Goal,
    Note,
    Participant,
    PeerEncounter,
    PeerSpecialist,
    Program,
    Referral,
)
from service.domain.assessment import Assessment, score
from service.domain.instruments import Instrument, load_registry

T0 = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
PROGRAM = Program(
    id="program-1",
    version=1,
    created_at=T0,
    updated_at=T0,
    code="bench",
    name="Bench Peer Program",
    identifier_system="https://peer.example.org/ids",
)


def meta(record_id: str) -> dict[str, Any]:
    return {"id": record_id, "program_id": PROGRAM.id, "version": 1, "created_at": T0, "updated_at": T0}


Job = Callable[[MappingContext], list[dict[str, Any]]]


def _one(
    to_fhir: Callable[[Any, MappingContext], dict[str, Any]], record: Any, ctx: MappingContext
) -> list[dict[str, Any]]:
    return [to_fhir(record, ctx)]


def _specialist(peer: PeerSpecialist, ctx: MappingContext) -> list[dict[str, Any]]:
    return [practitioner.to_fhir(peer, ctx), practitioner.role_to_fhir(peer, ctx)]


def _care_team(participant_id: str, members: list[CareTeamMember], ctx: MappingContext) -> list[dict[str, Any]]:
    return [care_team.to_fhir(participant_id, members, ctx)]


def _note(written: Note, session: PeerEncounter, ctx: MappingContext) -> list[dict[str, Any]]:
    return [note.to_fhir(written, session, ctx)]


def _referral(ref: Referral, session: PeerEncounter, ctx: MappingContext) -> list[dict[str, Any]]:
    return list(referral.to_fhir(ref, ctx, [session]))


def _assessment(record: Assessment, instrument: Instrument, ctx: MappingContext) -> list[dict[str, Any]]:
    return assessment.to_fhir(record, instrument, ctx)


ASSESSMENT_SETS = "QuestionnaireResponse+Obs"
PHQ9 = load_registry().get("phq-9")


def _scored(i: int, pid: str, sid: str, eid: str) -> Assessment:
    """A PHQ-9 with every item and the difficulty answered (a set of 1 + 12 resources)."""
    answers = {item.link_id: (i + n) % 4 for n, item in enumerate(PHQ9.items)}
    return Assessment.model_validate(
        {
            **meta(f"assessment-{i}"),
            "participant_id": pid,
            "instrument": PHQ9.id,
            "instrument_version": PHQ9.version,
            "answers": [{"link_id": k, "value": v} for k, v in answers.items()],
            "administered_by": "peer-specialist",
            "specialist_id": sid,
            "encounter_id": eid,
            "completed_at": T0,
            **score(PHQ9, answers).model_dump(),
        }
    )


def _ours(jobs: list[Job], ctx: MappingContext) -> None:
    for job in jobs:
        for resource in job(ctx):
            orjson.dumps(resource)


def _naive(models: list[Any], produced: list[dict[str, Any]]) -> None:
    for model, resource in zip(models, produced, strict=True):
        model.model_validate(resource).model_dump_json()


def _floor(produced: list[dict[str, Any]]) -> None:
    for resource in produced:
        orjson.dumps(resource)


def build(n: int) -> dict[str, list[Job]]:
    """Per kind, n closures that map one synthetic record."""
    jobs: dict[str, list[Job]] = {
        k: []
        for k in (
            "Organization",
            "Patient",
            "Practitioner+Role",
            "CareTeam",
            "Encounter",
            "DocumentReference",
            "ServiceRequest+Task",
            "Goal",
            "Consent",
            ASSESSMENT_SETS,
        )
    }
    for i in range(n):
        pid, sid, eid = f"participant-{i}", f"specialist-{i}", f"encounter-{i}"
        person = Participant.model_validate(
            {
                **meta(pid),
                "name": {"family": f"Bench{i}", "given": ["Pat"]},
                "birth_date": date(1980, 1, 1) + timedelta(days=i),
                "gender": "female",
                "identifiers": [{"type": "MR", "system": "https://h.example.org/mrn", "value": f"M{i}"}],
            }
        )
        peer = PeerSpecialist.model_validate(
            {
                **meta(sid),
                "name": {"family": "Peer", "given": ["Sam"]},
                "languages": ["en", "es"],
                "lived_experience": ["mental-health"],
                "certification": {
                    "state": "OR",
                    "number": f"PSS-{i}",
                    "issued_on": "2025-01-01",
                    "expires_on": "2027-01-01",
                },
            }
        )
        session = PeerEncounter.model_validate(
            {
                **meta(eid),
                "participant_id": pid,
                "specialist_id": sid,
                "start": T0,
                "end": T0 + timedelta(minutes=50),
                "modality": "video",
                "support_categories": ["emotional", "instrumental"],
                "status": "finished",
            }
        )
        written = Note.model_validate(
            {
                **meta(f"note-{i}"),
                "encounter_id": eid,
                "author_id": sid,
                "text": "Goal: housing. Intervention: shared experience. Plan: call Tuesday.",
                "status": "final",
                "signed_at": T0,
            }
        )
        members = [
            CareTeamMember.model_validate(
                {
                    **meta(f"ctm-{i}"),
                    "participant_id": pid,
                    "specialist_id": sid,
                    "role": "peer-specialist",
                    "period": {"start": "2026-01-01"},
                }
            )
        ]
        ref = Referral.model_validate(
            {
                **meta(f"referral-{i}"),
                "participant_id": pid,
                "referring_organization": {"name": "General Hospital"},
                "referring_clinician": {"name": {"family": "Clinician"}},
                "reason": {"text": "Engagement"},
                "requested_at": T0,
                "status": "received",
                "transitions": [
                    {
                        "action": "receive",
                        "from_status": "requested",
                        "to_status": "received",
                        "at": T0,
                        "by": "coordinator",
                    }
                ],
            }
        )
        aim = Goal.model_validate(
            {**meta(f"goal-{i}"), "participant_id": pid, "description": "Stable housing", "status": "active"}
        )
        agreement = Consent.model_validate(
            {
                **meta(f"consent-{i}"),
                "participant_id": pid,
                "recipient": {"name": "General Hospital"},
                "categories": ["notes"],
                "substance_use": True,
                "period": {"start": "2026-01-01"},
            }
        )
        jobs["Organization"].append(partial(_one, organization.to_fhir, PROGRAM))
        jobs["Patient"].append(partial(_one, patient.to_fhir, person))
        jobs["Practitioner+Role"].append(partial(_specialist, peer))
        jobs["CareTeam"].append(partial(_care_team, pid, members))
        jobs["Encounter"].append(partial(_one, encounter.to_fhir, session))
        jobs["DocumentReference"].append(partial(_note, written, session))
        jobs["ServiceRequest+Task"].append(partial(_referral, ref, session))
        jobs["Goal"].append(partial(_one, goal.to_fhir, aim))
        jobs["Consent"].append(partial(_one, consent.to_fhir, agreement))
        jobs[ASSESSMENT_SETS].append(partial(_assessment, _scored(i, pid, sid, eid), PHQ9))
    return jobs


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main(n: int = 300) -> float:
    ctx = MappingContext(PROGRAM)
    jobs = build(n)
    print(f"mapping benchmark: {n} records per kind; resources/s (higher is better)")
    print(f"{'kind':<26}{'ours':>10}{'naive':>10}{'floor':>12}{'ours/naive':>12}")
    total_ours = total_naive = 0.0
    total = 0
    assessment_line = ""
    for kind, closures in jobs.items():
        produced = [r for job in closures for r in job(ctx)]  # warm-up, and the dicts for naive/floor
        count = len(produced)
        models = [model_class(r["resourceType"]) for r in produced]
        ours = timed(partial(_ours, closures, ctx))
        naive = timed(partial(_naive, models, produced))
        floor = timed(partial(_floor, produced))
        total_ours += ours
        total_naive += naive
        total += count
        print(f"{kind:<26}{count / ours:>10.0f}{count / naive:>10.0f}{count / floor:>12.0f}{naive / ours:>11.2f}x")
        if kind == ASSESSMENT_SETS:
            sets = len(closures)
            assessment_line = (
                f"assessments mapped to their FHIR set ({count // sets} resources): "
                f"ours {sets / ours:.0f}/s, naive fhir.resources {sets / naive:.0f}/s, "
                f"ratio {naive / ours:.2f} (target >= 2.00)"
            )
    ratio = total_naive / total_ours
    print(assessment_line)
    print(f"{'all kinds':<26}{total / total_ours:>10.0f}{total / total_naive:>10.0f}{'':>12}{ratio:>11.2f}x")
    print(f"ratio ours/naive = {ratio:.2f} (target >= 2.00)")
    return ratio


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 300)
