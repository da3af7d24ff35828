"""Care-team members -> one CareTeam (US Core CareTeam)."""

from typing import Any

import orjson
import pytest

from mappings import care_team
from mappings.models import CareTeam, Practitioner
from service.domain import CareTeamMember, CareTeamRole
from tests.mappings.support import assert_golden, context, record

NUCC = "http://nucc.org/provider-taxonomy"
SNOMED = "http://snomed.info/sct"


def _member(member_id: str, **fields: Any) -> CareTeamMember:
    return record(CareTeamMember, member_id, participant_id="participant-1", **fields)


PEER = _member("member-1", specialist_id="specialist-1", role="peer-specialist", period={"start": "2025-02-01"})
PSYCHIATRIST = _member(
    "member-2",
    clinician={
        "name": {"family": "Chen", "given": ["Wei"], "prefix": ["Dr."]},
        "npi": "1234567893",
        "organization": {"name": "General Hospital", "npi": "1245319599"},
    },
    role="psychiatrist",
    period={"start": "2025-01-15"},
)
THERAPIST = _member(
    "member-3",
    clinician={"name": {"family": "Ortiz", "given": ["Sam"]}},
    role="therapist",
    period={"start": "2024-06-01", "end": "2025-06-30"},
)
SUPERVISOR = _member("member-4", specialist_id="specialist-2", role="supervisor", period={"start": "2025-02-01"})
TEAM = [PEER, PSYCHIATRIST, THERAPIST, SUPERVISOR]


def test_golden_care_team():
    ctx = context()
    resource = care_team.to_fhir("participant-1", TEAM, ctx)
    CareTeam.model_validate(resource)
    assert resource["meta"]["profile"] == ["http://hl7.org/fhir/us/core/StructureDefinition/us-core-careteam"]
    assert resource["id"] == ctx.id_for("care-team", "participant-1")
    assert resource["status"] == "active"
    assert resource["subject"] == ctx.reference("participant", "participant-1")
    # ordered by period start: therapist, psychiatrist, then the two specialists (by member id)
    members = [p["member"] for p in resource["participant"]]
    assert members[0] == {"reference": "#clinician-1", "display": "Sam Ortiz"}
    assert members[1] == {"reference": "#clinician-2", "display": "Dr. Wei Chen"}
    assert members[2] == ctx.reference("specialist-role", "specialist-1")
    assert members[3] == ctx.reference("specialist-role", "specialist-2")
    roles = [p["role"][0]["coding"][0] for p in resource["participant"]]
    assert (roles[0]["system"], roles[0]["code"]) == (NUCC, "101YM0800X")
    assert (roles[1]["system"], roles[1]["code"]) == (SNOMED, "80584001")
    assert (roles[2]["system"], roles[2]["code"]) == (NUCC, "175T00000X")
    assert resource["period"] == {"start": "2024-06-01"}
    assert_golden("care_team", resource)


def test_outside_clinicians_are_contained_us_core_practitioners():
    resource = care_team.to_fhir("participant-1", TEAM, context())
    contained = {c["id"]: c for c in resource["contained"]}
    with_npi, without_npi = contained["clinician-2"], contained["clinician-1"]
    for practitioner in (with_npi, without_npi):
        Practitioner.model_validate(practitioner)
        assert practitioner["identifier"] and practitioner["name"]
    assert with_npi["identifier"] == [{"system": "http://hl7.org/fhir/sid/us-npi", "value": "1234567893"}]
    assert without_npi["identifier"][0]["system"] == "https://peer.example.org/ids/care-team-member"
    psychiatrist = resource["participant"][1]
    assert psychiatrist["onBehalfOf"] == {"reference": "#organization-2", "display": "General Hospital"}
    assert contained["organization-2"]["name"] == "General Hospital"
    assert "onBehalfOf" not in resource["participant"][0]  # no employer known
    assert all("onBehalfOf" not in p for p in resource["participant"][2:])  # ctp-1: only for Practitioners


def test_supervisor_carries_the_value_set_root_and_the_local_code():
    resource = care_team.to_fhir("participant-1", [SUPERVISOR], context())
    codings = resource["participant"][0]["role"][0]["coding"]
    assert [(c["system"], c["code"]) for c in codings] == [
        (SNOMED, "223366009"),
        ("https://peer.example.org/ids/CodeSystem/care-team-role", "supervisor"),
    ]


def test_every_role_has_a_code():
    assert set(care_team.CODES.roles) == set(CareTeamRole)


def test_store_order_does_not_change_the_resource():
    forward = care_team.to_fhir("participant-1", TEAM, context())
    backward = care_team.to_fhir("participant-1", list(reversed(TEAM)), context())
    assert orjson.dumps(forward) == orjson.dumps(backward)


def test_team_period_ends_when_every_membership_ended():
    resource = care_team.to_fhir("participant-1", [THERAPIST], context())
    assert resource["period"] == {"start": "2024-06-01", "end": "2025-06-30"}


def test_two_overlays_give_different_valid_output():
    generic = care_team.to_fhir("participant-1", TEAM, context())
    epic = care_team.to_fhir("participant-1", TEAM, context("epic"))
    assert epic["meta"]["profile"] == ["http://hl7.org/fhir/us/core/StructureDefinition/us-core-careteam|3.1.1"]
    assert {k: v for k, v in generic.items() if k != "meta"} == {k: v for k, v in epic.items() if k != "meta"}
    for resource in (generic, epic):
        CareTeam.model_validate(resource)


def test_empty_team_and_strangers_are_refused():
    with pytest.raises(ValueError, match="at least one member"):
        care_team.to_fhir("participant-1", [], context())
    stranger = record(
        CareTeamMember,
        "member-9",
        participant_id="participant-2",
        specialist_id="specialist-1",
        role="peer-specialist",
        period={"start": "2025-01-01"},
    )
    with pytest.raises(ValueError, match="belong"):
        care_team.to_fhir("participant-1", [PEER, stranger], context())
