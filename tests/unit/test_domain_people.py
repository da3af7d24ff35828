"""Unit tests for peer specialists, participants and care-team members."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from service.domain.care_team import CareTeamMember, CareTeamMemberFields, CareTeamRole, ExternalClinician
from service.domain.participant import Gender, Participant, ParticipantFields
from service.domain.specialist import Certification, LivedExperience, PeerSpecialist, PeerSpecialistFields

VALID_NPI = "1234567893"
MRN_A = "https://hospital-a.example.org/mrn"
MRN_B = "https://hospital-b.example.org/mrn"
CREATED = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
META: dict[str, Any] = {
    "id": "rec-1",
    "program_id": "prog-1",
    "version": 3,
    "created_at": CREATED,
    "updated_at": CREATED + timedelta(days=1),
}


def messages(error: ValidationError) -> list[str]:
    return [str(e["msg"]) for e in error.errors()]


def invalid(model: type[BaseModel], data: dict[str, Any]) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(data)
    return caught.value


# --- certification --------------------------------------------------------------------------------


def certification(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"state": "OR", "number": "PSS-1", "issued_on": "2023-01-01", "expires_on": "2025-01-01"}
    data.update(overrides)
    return data


def test_certification_valid() -> None:
    cert = Certification.model_validate(certification(state="or"))
    assert cert.state == "OR"
    assert cert.issued_on == date(2023, 1, 1)


@pytest.mark.parametrize("expires_on", ["2022-12-31", "2023-01-01"])
def test_certification_expiry_on_or_before_issue_is_refused(expires_on: str) -> None:
    error = invalid(Certification, certification(expires_on=expires_on))
    assert messages(error) == ["Value error, certification expires on or before the day it was issued"]


def test_certification_state_must_be_us() -> None:
    error = invalid(Certification, certification(state="BC"))
    assert error.errors()[0]["loc"] == ("state",)


@pytest.mark.parametrize(
    ("day", "current"),
    [
        (date(2022, 12, 31), False),
        (date(2023, 1, 1), True),
        (date(2024, 6, 1), True),
        (date(2025, 1, 1), True),
        (date(2025, 1, 2), False),
    ],
)
def test_certification_is_current_inclusive(day: date, current: bool) -> None:
    assert Certification.model_validate(certification()).is_current(day) is current


# --- peer specialists -----------------------------------------------------------------------------


def specialist(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": {"family": "Peer", "given": ["Pat"]},
        "certification": certification(),
        "lived_experience": ["mental-health", "veteran"],
        "languages": ["en", "es-MX"],
    }
    data.update(overrides)
    return data


def test_specialist_valid_with_defaults() -> None:
    fields = PeerSpecialistFields.model_validate(specialist())
    assert fields.lived_experience == [LivedExperience.MENTAL_HEALTH, LivedExperience.VETERAN]
    assert fields.languages == ["en", "es-MX"]
    assert (fields.active, fields.weekly_capacity, fields.npi, fields.specialties) == (True, 20, None, [])


def test_specialist_record_with_meta() -> None:
    record = PeerSpecialist.model_validate({**specialist(npi=VALID_NPI), **META})
    assert (record.id, record.program_id, record.version) == ("rec-1", "prog-1", 3)
    assert record.npi == VALID_NPI
    assert isinstance(record, PeerSpecialistFields)


def test_specialist_record_needs_meta() -> None:
    error = invalid(PeerSpecialist, specialist())
    assert {e["loc"][0] for e in error.errors()} == {"id", "program_id", "version", "created_at", "updated_at"}


def test_specialist_duplicate_lived_experience_is_refused() -> None:
    error = invalid(PeerSpecialistFields, specialist(lived_experience=["veteran", "youth", "veteran"]))
    assert messages(error) == ["Value error, lived_experience lists an area twice"]


def test_specialist_duplicate_language_is_refused() -> None:
    error = invalid(PeerSpecialistFields, specialist(languages=["en", "es", "en"]))
    assert messages(error) == ["Value error, languages lists a language twice"]


def test_specialist_duplicate_language_after_trimming_is_refused() -> None:
    error = invalid(PeerSpecialistFields, specialist(languages=["en", " en "]))
    assert messages(error) == ["Value error, languages lists a language twice"]


@pytest.mark.parametrize("languages", [["en", "EN"], ["es-MX", "es-mx"]])
def test_specialist_duplicate_language_ignores_case(languages: list[str]) -> None:
    invalid(PeerSpecialistFields, specialist(languages=languages))


def test_specialist_needs_a_language() -> None:
    error = invalid(PeerSpecialistFields, specialist(languages=[]))
    assert error.errors()[0]["type"] == "too_short"


def test_specialist_language_must_be_bcp47() -> None:
    error = invalid(PeerSpecialistFields, specialist(languages=["en", "Spanish"]))
    assert error.errors()[0]["loc"] == ("languages", 1)


def test_specialist_unknown_lived_experience() -> None:
    error = invalid(PeerSpecialistFields, specialist(lived_experience=["astronaut"]))
    assert error.errors()[0]["loc"] == ("lived_experience", 0)


@pytest.mark.parametrize("capacity", [0, 100])
def test_specialist_capacity_bounds_accepted(capacity: int) -> None:
    assert PeerSpecialistFields.model_validate(specialist(weekly_capacity=capacity)).weekly_capacity == capacity


@pytest.mark.parametrize("capacity", [-1, 101])
def test_specialist_capacity_bounds_refused(capacity: int) -> None:
    error = invalid(PeerSpecialistFields, specialist(weekly_capacity=capacity))
    assert error.errors()[0]["loc"] == ("weekly_capacity",)


@pytest.mark.parametrize("npi", ["1234567890", "123456789", "abcdefghij"])
def test_specialist_npi_checked(npi: str) -> None:
    error = invalid(PeerSpecialistFields, specialist(npi=npi))
    assert error.errors()[0]["loc"] == ("npi",)


def test_specialist_certification_rules_apply_when_nested() -> None:
    error = invalid(PeerSpecialistFields, specialist(certification=certification(expires_on="2020-01-01")))
    assert error.errors()[0]["loc"] == ("certification",)
    assert "expires on or before" in messages(error)[0]


@pytest.mark.parametrize(
    "data",
    [
        specialist(rating=5),
        specialist(certification={**certification(), "level": "II"}),
        specialist(name={"family": "Peer", "alias": "P"}),
    ],
)
def test_specialist_unknown_fields_refused(data: dict[str, Any]) -> None:
    error = invalid(PeerSpecialistFields, data)
    assert [e["type"] for e in error.errors()] == ["extra_forbidden"]


# --- participants ---------------------------------------------------------------------------------


def participant(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": {"family": "Example", "given": ["Robin"]},
        "birth_date": "1990-04-01",
        "gender": "female",
        "identifiers": [{"type": "MR", "system": MRN_A, "value": "MRN-1"}],
    }
    data.update(overrides)
    return data


def mrn(system: str, value: str) -> dict[str, str]:
    return {"type": "MR", "system": system, "value": value}


def test_participant_valid_with_defaults() -> None:
    fields = ParticipantFields.model_validate(participant())
    assert fields.gender is Gender.FEMALE
    assert fields.language == "en"
    assert (fields.telecom, fields.address) == ([], None)


def test_participant_record_with_meta() -> None:
    record = Participant.model_validate({**participant(), **META})
    assert (record.id, record.version) == ("rec-1", 3)
    assert record.mrn(MRN_A) == "MRN-1"


def test_participant_birth_date_in_future_is_refused() -> None:
    tomorrow = date.today() + timedelta(days=1)
    error = invalid(ParticipantFields, participant(birth_date=str(tomorrow)))
    assert messages(error) == ["Value error, birth_date is in the future"]


def test_participant_born_today_is_fine() -> None:
    assert ParticipantFields.model_validate(participant(birth_date=str(date.today()))).birth_date == date.today()


def test_participant_birth_before_1900_is_refused() -> None:
    error = invalid(ParticipantFields, participant(birth_date="1899-12-31"))
    assert messages(error) == ["Value error, birth_date is before 1900"]


def test_participant_birth_on_1900_01_01_is_fine() -> None:
    assert ParticipantFields.model_validate(participant(birth_date="1900-01-01")).birth_date.year == 1900


def test_participant_two_mrns_for_one_hospital_is_refused() -> None:
    error = invalid(ParticipantFields, participant(identifiers=[mrn(MRN_A, "1"), mrn(MRN_A, "2")]))
    assert messages(error) == ["Value error, a participant has at most one MRN per hospital (identifier system)"]


def test_participant_mrns_from_two_hospitals_are_fine() -> None:
    fields = ParticipantFields.model_validate(participant(identifiers=[mrn(MRN_A, "1"), mrn(MRN_B, "1")]))
    assert (fields.mrn(MRN_A), fields.mrn(MRN_B), fields.mrn("urn:oid:9")) == ("1", "1", None)


def test_participant_mrn_ignores_other_identifier_types() -> None:
    fields = ParticipantFields.model_validate(
        participant(identifiers=[{"type": "MA", "system": MRN_A, "value": "M-9"}, mrn(MRN_B, "7")])
    )
    assert fields.mrn(MRN_A) is None
    assert fields.mrn(MRN_B) == "7"


def test_participant_non_mrn_identifiers_may_share_a_system() -> None:
    ids = [
        {"type": "PI", "system": "https://peer.example.org/ids", "value": "P-1"},
        {"type": "PI", "system": "https://peer.example.org/ids", "value": "P-2"},
    ]
    assert len(ParticipantFields.model_validate(participant(identifiers=ids)).identifiers) == 2


def test_participant_duplicate_identifier_is_refused() -> None:
    ids = [
        {"type": "MA", "system": "urn:oid:2.16.840.1.113883.4.3", "value": "X1"},
        {"type": "other", "system": "urn:oid:2.16.840.1.113883.4.3", "value": "X1"},
    ]
    error = invalid(ParticipantFields, participant(identifiers=ids))
    assert messages(error) == ["Value error, identifiers lists the same system and value twice"]


def test_participant_identifier_system_must_be_uri() -> None:
    error = invalid(ParticipantFields, participant(identifiers=[mrn("hospital-a", "1")]))
    assert error.errors()[0]["loc"] == ("identifiers", 0, "system")


@pytest.mark.parametrize("language", ["es", "zh-Hant-TW"])
def test_participant_language_accepted(language: str) -> None:
    assert ParticipantFields.model_validate(participant(language=language)).language == language


@pytest.mark.parametrize("language", ["Spanish", "es_MX", ""])
def test_participant_language_refused(language: str) -> None:
    error = invalid(ParticipantFields, participant(language=language))
    assert error.errors()[0]["loc"] == ("language",)


def test_participant_telecom_formats_are_checked() -> None:
    ok = [{"system": "email", "value": "robin@example.org"}, {"system": "sms", "value": "+1 503 555 0100"}]
    assert len(ParticipantFields.model_validate(participant(telecom=ok)).telecom) == 2
    error = invalid(ParticipantFields, participant(telecom=[{"system": "email", "value": "robin at example"}]))
    assert error.errors()[0]["loc"] == ("telecom", 0)
    assert "email contact must look like" in messages(error)[0]
    error = invalid(ParticipantFields, participant(telecom=[{"system": "phone", "value": "CALL-ME-NOW"}]))
    assert "phone contact must be" in messages(error)[0]


def test_participant_address_state_is_checked() -> None:
    fields = ParticipantFields.model_validate(participant(address={"city": "Portland", "state": "or"}))
    assert fields.address is not None
    assert fields.address.state == "OR"
    error = invalid(ParticipantFields, participant(address={"state": "XX"}))
    assert error.errors()[0]["loc"] == ("address", "state")


def test_participant_gender_codes() -> None:
    error = invalid(ParticipantFields, participant(gender="f"))
    assert error.errors()[0]["loc"] == ("gender",)


@pytest.mark.parametrize(
    "data",
    [
        participant(ssn="123-45-6789"),
        participant(address={"city": "Portland", "country": "US"}),
        participant(identifiers=[{**mrn(MRN_A, "1"), "use": "official"}]),
    ],
)
def test_participant_unknown_fields_refused(data: dict[str, Any]) -> None:
    error = invalid(ParticipantFields, data)
    assert [e["type"] for e in error.errors()] == ["extra_forbidden"]


# --- care-team members ----------------------------------------------------------------------------


def member(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"participant_id": "part-1", "role": "peer-specialist", "period": {"start": "2024-01-01"}}
    data.update(overrides)
    return data


CLINICIAN: dict[str, Any] = {"name": {"family": "Therapist"}, "npi": VALID_NPI}
ONE_MEMBER = "Value error, a care-team member is either a peer specialist (specialist_id) or a clinician"
PEER_ROLE = "Value error, the peer-specialist role is held by one of the program's specialists"


def test_care_team_peer_specialist() -> None:
    fields = CareTeamMemberFields.model_validate(member(specialist_id="spec-1"))
    assert (fields.specialist_id, fields.clinician, fields.role) == ("spec-1", None, CareTeamRole.PEER_SPECIALIST)


@pytest.mark.parametrize("role", [r.value for r in CareTeamRole if r is not CareTeamRole.PEER_SPECIALIST])
def test_care_team_external_clinician(role: str) -> None:
    fields = CareTeamMemberFields.model_validate(member(role=role, clinician=CLINICIAN))
    assert fields.specialist_id is None
    assert isinstance(fields.clinician, ExternalClinician)
    assert fields.clinician.npi == VALID_NPI


def test_care_team_specialist_may_hold_other_roles() -> None:
    assert CareTeamMemberFields.model_validate(member(role="supervisor", specialist_id="s1")).role == "supervisor"


def test_care_team_member_with_both_is_refused() -> None:
    error = invalid(CareTeamMemberFields, member(role="therapist", specialist_id="spec-1", clinician=CLINICIAN))
    assert messages(error) == [ONE_MEMBER]


def test_care_team_member_with_neither_is_refused() -> None:
    error = invalid(CareTeamMemberFields, member(role="therapist"))
    assert messages(error) == [ONE_MEMBER]


def test_care_team_peer_role_needs_a_specialist() -> None:
    error = invalid(CareTeamMemberFields, member(role="peer-specialist", clinician=CLINICIAN))
    assert messages(error) == [PEER_ROLE]


def test_care_team_clinician_npi_is_checked() -> None:
    error = invalid(
        CareTeamMemberFields, member(role="nurse", clinician={"name": {"family": "N"}, "npi": "1234567890"})
    )
    assert error.errors()[0]["loc"] == ("clinician", "npi")


def test_care_team_clinician_organization_is_checked() -> None:
    clinician = {"name": {"family": "N"}, "organization": {"name": "Clinic", "npi": "12"}}
    error = invalid(CareTeamMemberFields, member(role="nurse", clinician=clinician))
    assert error.errors()[0]["loc"] == ("clinician", "organization", "npi")


def test_care_team_period_must_be_ordered() -> None:
    error = invalid(
        CareTeamMemberFields, member(specialist_id="s1", period={"start": "2024-02-01", "end": "2024-01-31"})
    )
    assert messages(error) == ["Value error, period end is before its start"]


def test_care_team_unknown_role() -> None:
    error = invalid(CareTeamMemberFields, member(role="coach", specialist_id="s1"))
    assert error.errors()[0]["loc"] == ("role",)


@pytest.mark.parametrize(
    "data",
    [
        member(specialist_id="s1", primary=True),
        member(role="nurse", clinician={**CLINICIAN, "phone": "5035550100"}),
        member(specialist_id="s1", period={"start": "2024-01-01", "until": "2024-02-01"}),
    ],
)
def test_care_team_unknown_fields_refused(data: dict[str, Any]) -> None:
    error = invalid(CareTeamMemberFields, data)
    assert [e["type"] for e in error.errors()] == ["extra_forbidden"]


def test_care_team_member_record_with_meta() -> None:
    record = CareTeamMember.model_validate({**member(specialist_id="spec-1"), **META})
    assert (record.id, record.program_id, record.specialist_id) == ("rec-1", "prog-1", "spec-1")
    error = invalid(CareTeamMember, {**member(), **META})
    assert messages(error) == [ONE_MEMBER]
