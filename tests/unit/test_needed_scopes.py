"""The scopes a connection needs, from what it pushes and polls, and what given scopes leave out."""

from __future__ import annotations

import pytest

from service.exchange.needed_scopes import PUSHED, default_scopes, missing, needed


def test_notes_need_the_note_its_session_and_who_wrote_it() -> None:
    assert needed(["notes"], False) == {
        "DocumentReference": "cu",
        "Encounter": "cu",
        "Organization": "cu",
        "Patient": "cu",
        "Practitioner": "cu",
        "PractitionerRole": "cu",
    }


def test_referral_status_reads_and_updates_the_task_and_polling_reads() -> None:
    assert needed(["referral-status"], False)["Task"] == "ru"
    polled = needed([], True)
    assert polled == {"Patient": "rs", "ServiceRequest": "rs", "Task": "rs"}
    both = needed(["referral-status", "encounters"], True)
    assert both["Task"] == "rus" and both["Patient"] == "crus" and "CareTeam" not in both


def test_every_push_kind_is_known() -> None:
    from service.records.push_kinds import PUSH_KINDS

    assert set(PUSHED) == set(PUSH_KINDS)
    with pytest.raises(KeyError):
        needed(["lab-results"], False)


def test_the_default_asks_for_what_is_needed_and_read_on_what_is_written() -> None:
    assert default_scopes(["care-teams"], True).split() == [
        "system/CareTeam.cru",
        "system/Organization.cru",
        "system/Patient.crus",
        "system/Practitioner.cru",
        "system/PractitionerRole.cru",
        "system/ServiceRequest.rs",
        "system/Task.rs",
    ]
    assert missing(needed(["care-teams"], True), default_scopes(["care-teams"], True)) == []


def test_missing_names_what_is_left_out_in_v2_syntax() -> None:
    need = needed(["encounters"], True)
    assert missing(need, "system/*.cru system/ServiceRequest.rs") == ["system/Patient.s", "system/Task.s"]
    assert missing(need, "system/Patient.write system/Encounter.cud") == [
        "system/Organization.cu",
        "system/Patient.rs",
        "system/Practitioner.cu",
        "system/PractitionerRole.cu",
        "system/ServiceRequest.rs",
        "system/Task.rs",
    ]
    assert missing(need, ["system/*.*"]) == []
    assert missing(need, "patient/*.cruds user/*.cruds") == [f"system/{t}.{p}" for t, p in need.items()]
