"""Valid request bodies for every record type, and helpers that create records through the API."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx

TODAY = datetime.now(UTC).date()
MRN_SYSTEM = "https://hospital.example.org/mrn"


def at(days_ago: int, hour: int = 15, minute: int = 0) -> datetime:
    day = TODAY - timedelta(days=days_ago)
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)


def specialist_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": {"family": "Peer", "given": ["Pat"]},
        "certification": {
            "state": "OR",
            "number": "PSS-1",
            "issued_on": str(TODAY - timedelta(days=365)),
            "expires_on": str(TODAY + timedelta(days=365)),
        },
        "lived_experience": ["mental-health"],
        "languages": ["en"],
    }
    body.update(overrides)
    return body


def participant_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": {"family": "Example", "given": ["Robin"]},
        "birth_date": "1990-04-01",
        "gender": "female",
        "identifiers": [{"type": "MR", "system": MRN_SYSTEM, "value": "MRN-1"}],
    }
    body.update(overrides)
    return body


def encounter_body(participant_id: str, specialist_id: str, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "participant_id": participant_id,
        "specialist_id": specialist_id,
        "start": at(3).isoformat(),
        "end": (at(3) + timedelta(minutes=45)).isoformat(),
        "modality": "video",
        "support_categories": ["emotional"],
        "status": "finished",
    }
    body.update(overrides)
    return body


def note_body(encounter_id: str, author_id: str, **overrides: Any) -> dict[str, Any]:
    return {
        "encounter_id": encounter_id,
        "author_id": author_id,
        "text": "Goal: housing. Plan: call.",
        **overrides,
    }


def referral_body(participant_id: str, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "participant_id": participant_id,
        "referring_organization": {"name": "General Hospital"},
        "referring_clinician": {"name": {"family": "Clinician", "given": ["Dana"]}},
        "reason": {"text": "Engagement in outpatient care"},
        "requested_at": at(5).isoformat(),
    }
    body.update(overrides)
    return body


def care_team_body(participant_id: str, specialist_id: str | None = None, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"participant_id": participant_id, "period": {"start": str(TODAY)}}
    if specialist_id:
        body.update(specialist_id=specialist_id, role="peer-specialist")
    else:
        body.update(role="therapist", clinician={"name": {"family": "Therapist"}, "npi": "1234567893"})
    body.update(overrides)
    return body


def consent_body(participant_id: str, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "participant_id": participant_id,
        "recipient": {"name": "General Hospital"},
        "categories": ["encounters", "notes"],
        "substance_use": True,
        "period": {"start": str(TODAY), "end": str(TODAY + timedelta(days=365))},
    }
    body.update(overrides)
    return body


def goal_body(participant_id: str, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "participant_id": participant_id,
        "description": "Find stable housing",
        "domain": "housing",
        "target_date": str(TODAY + timedelta(days=90)),
    }
    body.update(overrides)
    return body


def assessment_body(participant_id: str, specialist_id: str, **overrides: Any) -> dict[str, Any]:
    """A GAD-7 given by a peer specialist (total 7, mild)."""
    items = ["69725-0", "68509-9", "69733-4", "69734-2", "69735-9", "69689-8", "69736-7"]
    body: dict[str, Any] = {
        "participant_id": participant_id,
        "instrument": "gad-7",
        "answers": [{"link_id": item, "value": 1} for item in items],
        "administered_by": "peer-specialist",
        "specialist_id": specialist_id,
        "completed_at": at(2).isoformat(),
    }
    body.update(overrides)
    return body


async def create(client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post(f"/peer/v1/{path}", json=body)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


class World:
    """A small set of linked records, built through the public API."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.ids: dict[str, str] = {}

    async def build(self) -> World:
        c = self.client
        self.ids["specialist"] = (await create(c, "specialists", specialist_body()))["id"]
        self.ids["participant"] = (await create(c, "participants", participant_body()))["id"]
        p, s = self.ids["participant"], self.ids["specialist"]
        self.ids["goal"] = (await create(c, "goals", goal_body(p)))["id"]
        self.ids["encounter"] = (await create(c, "encounters", encounter_body(p, s)))["id"]
        self.ids["note"] = (await create(c, "notes", note_body(self.ids["encounter"], s)))["id"]
        self.ids["referral"] = (await create(c, "referrals", referral_body(p)))["id"]
        self.ids["care-team-member"] = (await create(c, "care-team-members", care_team_body(p, s)))["id"]
        self.ids["consent"] = (await create(c, "consents", consent_body(p)))["id"]
        return self


def birthday(years: int) -> date:
    return date(TODAY.year - years, 1, 15)
