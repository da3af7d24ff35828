"""The SMART scopes an EHR connection needs, derived from what it pushes and polls, and what a set of
scopes (asked for, or granted in a token answer) leaves out. Scopes are written in SMART v2 syntax
(``system/Encounter.cru``); v1 scopes (``system/Encounter.write``) are understood when checked.
Pure: no I/O."""

from __future__ import annotations

from collections.abc import Iterable

from service.auth.scopes import ORDER, Interaction, Permissions

WRITE = "cu"
"""A resource delivered: update-as-create (PUT) or create (POST with If-None-Exist)."""
READ = "rs"
DEPENDENCIES = ("Patient", "Practitioner", "PractitionerRole", "Organization")
"""What every pushed record references (its participant, its specialist, their role and organisation)."""

ASSESSMENT_TYPES = ("QuestionnaireResponse", "Observation")
"""An outcome assessment: its answers and the scores derived from them."""

PUSHED: dict[str, dict[str, str]] = {
    "encounters": {"Encounter": WRITE, **dict.fromkeys(DEPENDENCIES, WRITE)},
    "notes": {"DocumentReference": WRITE, "Encounter": WRITE, **dict.fromkeys(DEPENDENCIES, WRITE)},
    "care-teams": {"CareTeam": WRITE, **dict.fromkeys(DEPENDENCIES, WRITE)},
    # the clinic's Task is read and updated; the sessions and outcome scores it lists as outputs are
    # delivered first (an outcome score is an Observation derived from a QuestionnaireResponse)
    "referral-status": {
        "Task": "ru",
        "Encounter": WRITE,
        **dict.fromkeys(ASSESSMENT_TYPES, WRITE),
        **dict.fromkeys(DEPENDENCIES, WRITE),
    },
    "assessments": {**dict.fromkeys(ASSESSMENT_TYPES, WRITE), "Encounter": WRITE, **dict.fromkeys(DEPENDENCIES, WRITE)},
}
"""Per push kind (``ehr add --push``): the interactions it needs per resource type."""
POLLED: dict[str, str] = {"Task": READ, "ServiceRequest": READ, "Patient": READ}
"""What polling for referrals reads: the Tasks, the ServiceRequests they focus on, their patients."""


def _ordered(letters: Iterable[str]) -> str:
    wanted = set(letters)
    return "".join(letter for letter in ORDER if letter in wanted)


def needed(push: Iterable[str], poll_referrals: bool) -> dict[str, str]:
    """Resource type -> the interactions (letters of ``cruds``) the connection needs, sorted by type.
    An unknown push kind is a KeyError (connections are validated before)."""
    found: dict[str, set[str]] = {}
    wanted = [PUSHED[kind] for kind in push]
    if poll_referrals:
        wanted.append(POLLED)
    for table in wanted:
        for resource_type, letters in table.items():
            found.setdefault(resource_type, set()).update(letters)
    return {t: _ordered(found[t]) for t in sorted(found)}


def default_scopes(push: Iterable[str], poll_referrals: bool) -> str:
    """The scopes a connection asks for unless told otherwise: what it needs, with read on what it
    writes (an EHR may read back what it was sent), in SMART v2 syntax."""
    scopes = []
    for resource_type, letters in needed(push, poll_referrals).items():
        asked = letters + "r" if "c" in letters or "u" in letters else letters
        scopes.append(f"system/{resource_type}.{_ordered(asked)}")
    return " ".join(scopes)


def missing(need: dict[str, str], scopes: str | Iterable[str]) -> list[str]:
    """The scopes (v2 syntax) ``need`` asks for and ``scopes`` does not cover; ``[]`` when covered."""
    given = scopes.split() if isinstance(scopes, str) else list(scopes)
    permissions = Permissions.of(given)
    lacking = []
    for resource_type, letters in need.items():
        absent = [x for x in letters if not permissions.allows(resource_type, Interaction(x))]
        if absent:
            lacking.append(f"system/{resource_type}.{_ordered(absent)}")
    return lacking
