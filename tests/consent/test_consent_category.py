"""The SUD counseling notes category in FHIR Consent: its own provision.class, never read as notes."""

from __future__ import annotations

from typing import Any

from mappings import consent
from mappings.models import Consent as FhirConsent
from service.domain import Consent, DataCategory
from tests.mappings.support import context, record

FULL = {
    "participant_id": "participant-1",
    "recipient": {"name": "General Hospital", "npi": "1245319599"},
    "categories": ["sud-counseling-notes"],
    "substance_use": True,
    "period": {"start": "2025-10-01", "end": "2026-09-30"},
}


def ctx():
    return context().knowing(("participant", "participant-1"))


def _consent(**changes: Any) -> Consent:
    return record(Consent, "consent-1", **{**FULL, **changes})


def test_the_category_is_a_program_local_class_and_round_trips():
    resource = consent.to_fhir(_consent(), ctx())
    FhirConsent.model_validate(resource)
    program_system = ctx().program.identifier_system.rstrip("/")
    assert resource["provision"]["class"] == [
        {
            "system": f"{program_system}/CodeSystem/consent-data-category",
            "code": "sud-counseling-notes",
            "display": "SUD counseling notes",
        }
    ]
    assert consent.from_fhir(resource, ctx()).categories == [DataCategory.SUD_COUNSELING_NOTES]


def test_a_consent_to_notes_does_not_name_sud_counseling_notes():
    resource = consent.to_fhir(_consent(categories=["notes"]), ctx())
    assert [c["code"] for c in resource["provision"]["class"]] == ["DocumentReference"]
    assert consent.from_fhir(resource, ctx()).categories == [DataCategory.NOTES]


def test_both_categories_are_told_apart():
    resource = consent.to_fhir(_consent(categories=["notes", "sud-counseling-notes"]), ctx())
    back = consent.from_fhir(resource, ctx()).categories
    assert back == [DataCategory.NOTES, DataCategory.SUD_COUNSELING_NOTES]


def test_another_programs_code_opens_nothing():
    resource = consent.to_fhir(_consent(categories=["notes", "sud-counseling-notes"]), ctx())
    for item in resource["provision"]["class"]:
        if item["code"] == "sud-counseling-notes":
            item["system"] = "https://elsewhere.example.org/CodeSystem/consent-data-category"
    assert consent.from_fhir(resource, ctx()).categories == [DataCategory.NOTES]
