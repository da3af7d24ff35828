"""Consent to share <-> Consent (FHIR R4)."""

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mappings import consent
from mappings.context import MappingError
from mappings.models import Consent as FhirConsent
from mappings.models import Organization
from service.domain import Consent, ConsentFields, DataCategory
from service.domain.consent import PART2_POLICY
from tests.mappings.support import STAMP, assert_golden, context, past_dates, record, safe_text

FULL = {
    "participant_id": "participant-1",
    "recipient": {
        "name": "General Hospital Behavioral Health",
        "npi": "1245319599",
        "identifier": {"type": "other", "system": "https://hospital.example.org/org", "value": "BH-7"},
    },
    "categories": ["encounters", "notes", "referrals"],
    "substance_use": True,
    "period": {"start": "2025-10-01", "end": "2026-09-30"},
}
CONFIDENTIALITY = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
BASE_CONSENT = "http://hl7.org/fhir/StructureDefinition/Consent"


def ctx():
    return context().knowing(("participant", "participant-1"))


def _consent(**changes: Any) -> Consent:
    return record(Consent, "consent-1", **{**FULL, **changes})


def test_golden_part2_consent_carries_security_labels_and_the_regulation():
    resource = consent.to_fhir(_consent(), ctx())
    FhirConsent.model_validate(resource)
    assert resource["meta"]["profile"] == [BASE_CONSENT]  # no US Core Consent profile: the base definition
    security = [(c["system"], c["code"]) for c in resource["meta"]["security"]]
    assert security == [(CONFIDENTIALITY, "R"), (ACT_CODE, "42CFRPart2")]
    assert resource["policy"] == [{"uri": PART2_POLICY}]
    assert resource["status"] == "active"
    assert resource["scope"]["coding"][0]["code"] == "patient-privacy"
    assert resource["category"][0]["coding"][0] == {
        "system": "http://loinc.org",
        "code": "59284-0",
        "display": "Patient Consent",
    }
    assert resource["patient"] == ctx().reference("participant", "participant-1")
    provision = resource["provision"]
    assert provision["period"] == {"start": "2025-10-01", "end": "2026-09-30"}
    assert [c["code"] for c in provision["class"]] == ["Encounter", "DocumentReference", "ServiceRequest", "Task"]
    actor = provision["actor"][0]
    assert actor["role"]["coding"][0]["code"] == "PRCP"
    assert actor["reference"] == {"reference": "#recipient", "display": "General Hospital Behavioral Health"}
    Organization.model_validate(resource["contained"][0])
    assert_golden("consent_part2", resource)


def test_consent_without_substance_use_has_no_part2_labels():
    resource = consent.to_fhir(_consent(substance_use=False, categories=["goals"]), ctx())
    FhirConsent.model_validate(resource)
    assert "security" not in resource["meta"] and "policy" not in resource
    assert resource["meta"]["profile"] == [BASE_CONSENT]
    assert resource["policyRule"]["coding"][0]["code"] == "OPTIN"  # ppc-1: policy or policyRule
    assert_golden("consent", resource)


def test_revoked_consent_is_inactive():
    revoked = record(Consent, "consent-1", **FULL, revoked_at=STAMP)
    assert consent.to_fhir(revoked, ctx())["status"] == "inactive"


def test_table_policy_url_is_the_domain_one():
    assert consent.CODES.part2.policy_uri == PART2_POLICY
    assert set(consent.CODES.classes) == set(DataCategory)


def test_overlays_agree_on_consent():
    item = _consent()
    outputs = [consent.to_fhir(item, context(name)) for name in ("generic", "epic", "oracle")]
    for resource in outputs:
        FhirConsent.model_validate(resource)
    assert outputs[0] == outputs[1] == outputs[2]
    assert all(resource["meta"]["profile"] == [BASE_CONSENT] for resource in outputs)


def test_mapping_twice_is_byte_identical():
    item = _consent()
    assert orjson.dumps(consent.to_fhir(item, ctx())) == orjson.dumps(consent.to_fhir(item, ctx()))


recipients = st.builds(
    lambda name, npi, ident: {"name": name, "npi": npi, "identifier": ident},
    safe_text,
    st.sampled_from([None, "1245319599", "1234567893"]),
    st.one_of(
        st.none(),
        st.builds(
            lambda kind, value, assigner: {
                "type": kind,
                "system": "https://registry.example.org/org",
                "value": value,
                "assigner": assigner,
            },
            st.sampled_from(["PI", "other"]),
            safe_text,
            st.one_of(st.none(), safe_text),
        ),
    ),
)
consents = st.builds(
    lambda recipient, categories, substance_use, start, end: {
        "participant_id": "participant-1",
        "recipient": recipient,
        "categories": categories,
        "substance_use": substance_use,
        "period": {"start": start, "end": end if end and end >= start else None},
    },
    recipients,
    st.lists(st.sampled_from(list(DataCategory)), min_size=1, unique=True),
    st.booleans(),
    past_dates,
    st.one_of(st.none(), past_dates),
)


@settings(max_examples=60, deadline=None)
@given(consents)
def test_round_trip_keeps_every_field(fields: dict[str, Any]):
    item = record(Consent, "consent-9", **fields)
    back = consent.from_fhir(consent.to_fhir(item, ctx()), ctx())
    assert back == ConsentFields.model_validate(item.model_dump(include=set(ConsentFields.model_fields)))


def test_outside_consent_with_unknown_extensions_and_sparse_elements():
    context_ = ctx()
    resource = {
        "resourceType": "Consent",
        "id": "ehr-consent",
        "extension": [{"url": "http://example.org/fhir/StructureDefinition/unknown", "valueString": "x"}],
        "status": "active",
        "scope": {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]
        },
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": context_.reference("participant", "participant-1"),
        "policy": [{"uri": PART2_POLICY}],
        "provision": {
            "period": {"start": "2025-01-01T09:00:00Z"},
            "actor": [
                {
                    "role": {
                        "coding": [
                            {"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "PRCP"}
                        ]
                    },
                    "reference": {
                        "display": "County Crisis Line",
                        "identifier": {"system": "http://hl7.org/fhir/sid/us-npi", "value": "1234567893"},
                    },
                }
            ],
            "class": [
                {"system": "http://hl7.org/fhir/resource-types", "code": "Immunization"},
                {"system": "http://hl7.org/fhir/resource-types", "code": "Patient"},
            ],
        },
    }
    fields = consent.from_fhir(resource, context_)
    assert fields.recipient.name == "County Crisis Line" and fields.recipient.npi == "1234567893"
    assert fields.recipient.identifier is None
    assert fields.categories == [DataCategory.DEMOGRAPHICS]
    assert fields.substance_use is True  # from the policy URL alone
    assert (str(fields.period.start), fields.period.end) == ("2025-01-01", None)


def _inbound(**changes: Any) -> dict[str, Any]:
    resource = consent.to_fhir(_consent(), ctx())
    for path, value in changes.items():
        node = resource
        *parents, leaf = path.split("__")
        for part in parents:
            node = node[part]
        if value is None:
            node.pop(leaf, None)
        else:
            node[leaf] = value
    return resource


@pytest.mark.parametrize(
    ("changes", "element"),
    [
        ({"patient": None}, "Consent.patient"),
        ({"patient": {"reference": "Patient/elsewhere"}}, "Consent.patient"),
        ({"status": "rejected"}, "Consent.status"),
        ({"status": "sleeping"}, "Consent.status"),
        ({"provision": None}, "Consent.provision"),
        ({"provision__type": "deny"}, "Consent.provision.type"),
        ({"provision__period": {"end": "2026-01-01"}}, "Consent.provision.period.start"),
        ({"provision__period": {"start": "2025-13-01"}}, "Consent.provision.period.start"),
        ({"provision__actor": None}, "Consent.provision.actor"),
        (
            {
                "provision__actor": [
                    {
                        "role": {
                            "coding": [
                                {"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "PRCP"}
                            ]
                        },
                        "reference": {"reference": "#nowhere"},
                    }
                ]
            },
            "Consent.provision.actor[0].reference",
        ),
        (
            {"provision__class": [{"system": "http://hl7.org/fhir/resource-types", "code": "Immunization"}]},
            "Consent.provision.class",
        ),
        ({"provision__period": {"start": "2025-06-01", "end": "2025-01-01"}}, "Consent (period)"),
    ],
)
def test_invalid_inbound_consent_names_the_element(changes, element):
    with pytest.raises(MappingError) as caught:
        consent.from_fhir(_inbound(**changes), ctx())
    assert caught.value.element == element


def test_assessments_are_a_category_of_their_own():
    """The category assessments is the QuestionnaireResponse and the Observations scored from it; a
    consent lists it explicitly (one listing only the earlier categories does not grant it)."""
    resource = consent.to_fhir(_consent(categories=["encounters", "assessments"]), ctx())
    classes = [c["code"] for c in resource["provision"]["class"]]
    assert classes == ["Encounter", "QuestionnaireResponse", "Observation"]
    back = consent.from_fhir(resource, ctx())
    assert back.categories == [DataCategory.ENCOUNTERS, DataCategory.ASSESSMENTS]
    earlier = _consent(categories=["encounters", "notes", "care-team", "demographics", "referrals", "goals"])
    resource = consent.to_fhir(earlier, ctx())
    assert {"QuestionnaireResponse", "Observation"}.isdisjoint(c["code"] for c in resource["provision"]["class"])
    assert DataCategory.ASSESSMENTS not in consent.from_fhir(resource, ctx()).categories
