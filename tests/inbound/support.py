"""Inbound assessment test helpers: a PHQ-9 QuestionnaireResponse as a clinic's system writes it."""

from __future__ import annotations

from typing import Any

from service.domain.instruments import load_registry

REGISTRY = load_registry()
PHQ9 = REGISTRY.get("phq-9")
BARC10 = REGISTRY.get("barc-10")
LOINC = "http://loinc.org"
FREQUENCY = ["LA6568-5", "LA6569-3", "LA6570-1", "LA6571-9"]
VALUES = [2, 2, 1, 2, 1, 1, 0, 0, 1]


def phq9_response(values: list[int] = VALUES, *, difficulty: int | None = 1, **changes: Any) -> dict[str, Any]:
    """A PHQ-9 response as a clinic's system writes it: LOINC answer codes, a Patient subject."""
    items: list[dict[str, Any]] = [
        {"linkId": item.link_id, "answer": [{"valueCoding": {"system": LOINC, "code": FREQUENCY[value]}}]}
        for item, value in zip(PHQ9.scored_items, values, strict=False)
    ]
    if difficulty is not None:
        items.append({"linkId": "69722-7", "answer": [{"valueInteger": difficulty}]})
    resource: dict[str, Any] = {
        "resourceType": "QuestionnaireResponse",
        "identifier": {"system": "urn:oid:2.16.840.1.113883.19.5.42", "value": "QR-1"},
        "questionnaire": f"{PHQ9.url}|{PHQ9.version}",
        "status": "completed",
        "subject": {"reference": "Patient/abc"},
        "authored": "2026-01-03T09:15:00-08:00",
        "author": {"reference": "Patient/abc"},
        "item": items,
    }
    resource.update(changes)
    return resource
