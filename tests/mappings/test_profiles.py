"""Every resource type the gateway serves claims a profile, on every overlay, and overlays whose
profile version narrows a reference (US Core 3.1.1 Encounter.participant.individual) say so as data."""

import pytest

from mappings.clinical_context import KEPT_TYPES
from mappings.context import RESOURCE_TYPES
from mappings.profiles import load_overlay, names
from service.fhir.search_params import SEARCH_PARAMS

SERVED = sorted(SEARCH_PARAMS)
MAPPED = sorted(set(RESOURCE_TYPES.values()))  # also Procedure: sent to EHRs, not searchable here


def test_every_served_type_is_produced_by_the_mappings():
    """Besides what the mappings produce, /fhir serves only a referral's clinical context: resources a
    clinic sent, kept as received (their meta.profile is the sender's own claim), and the outcome
    instruments as Questionnaires (no US Core profile exists for them)."""
    assert set(SERVED) - set(KEPT_TYPES) - {"Questionnaire"} <= set(MAPPED)


@pytest.mark.parametrize("overlay", names())
@pytest.mark.parametrize("resource_type", MAPPED)
def test_every_served_type_claims_a_profile(overlay, resource_type):
    profiles = load_overlay(overlay).profiles.get(resource_type)
    assert profiles, f"{overlay}.toml claims no profile for {resource_type}"
    assert all(url.startswith("http://hl7.org/fhir/") for url in profiles)


@pytest.mark.parametrize("overlay", names())
def test_profile_versions_are_consistent_within_an_overlay(overlay):
    """An overlay pins US Core to one version (3.1.1) or to none (the current one), never a mix."""
    us_core = [url for urls in load_overlay(overlay).profiles.values() for url in urls if "/us/core/" in url]
    assert len({url.partition("|")[2] for url in us_core}) == 1


def test_only_us_core_3_1_1_narrows_the_encounter_participant():
    for overlay in names():
        loaded = load_overlay(overlay)
        pinned = loaded.profiles["Encounter"][0].endswith("|3.1.1")
        assert loaded.allows("Encounter.participant.individual", "PractitionerRole") is not pinned
        assert loaded.allows("Encounter.participant.individual", "Practitioner")


@pytest.mark.parametrize("overlay", ["generic", "oracle"])
def test_us_core_6_overlays_claim_the_assessment_profiles(overlay):
    profiles = load_overlay(overlay).profiles
    core = "http://hl7.org/fhir/us/core/StructureDefinition/"
    assert profiles["QuestionnaireResponse"] == [core + "us-core-questionnaireresponse"]
    assert profiles["Observation"] == [core + "us-core-observation-screening-assessment"]
