"""SMART scopes: parsing (v1 and v2), what a token's scopes allow, and the grant at the token endpoint
(the intersection of what a client asks for and what its registration allows)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.auth.scopes import (
    ADMIN_SCOPE,
    Interaction,
    Permissions,
    ResourceScope,
    grantable,
    parse,
    split,
    valid_registration,
)

LETTERS = "cruds"
TYPES = ["Patient", "Encounter", "Task", "ServiceRequest"]


# --- parse ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("system/Patient.rs", ResourceScope("Patient", "rs")),
        ("system/Encounter.cruds", ResourceScope("Encounter", "cruds")),
        ("system/Task.u", ResourceScope("Task", "u")),
        ("system/*.s", ResourceScope("*", "s")),
        ("system/*.cruds", ResourceScope("*", "cruds")),
        # v1
        ("system/Patient.read", ResourceScope("Patient", "rs")),
        ("system/*.write", ResourceScope("*", "cud")),
        ("system/Observation.*", ResourceScope("Observation", "cruds")),
        ("system/*.*", ResourceScope("*", "cruds")),
    ],
)
def test_parse_v1_and_v2(text, expected):
    assert parse(text) == expected
    assert expected.text.startswith("system/")


@pytest.mark.parametrize(
    "text",
    [
        "system/Patient.",  # no permission
        "system/Patient.sr",  # v2 letters out of order
        "system/Patient.rr",
        "system/Patient.x",
        "system/Patient.readwrite",
        "patient/Patient.rs",  # only system/ scopes mean anything to a backend client
        "user/Patient.read",
        "system/patient.rs",  # not a FHIR type
        "system/Observation.rs?category=laboratory",  # granular scopes are not supported
        "system/Patient.rs?_id=1",
        "system/.rs",
        "system/**.rs",
        "system/Patient.rs extra",
        "launch",
        "openid",
        ADMIN_SCOPE,  # not a resource scope
        "",
    ],
)
def test_parse_refuses_everything_else(text):
    assert parse(text) is None


def test_resource_scope_text_round_trips():
    for text in ("system/Patient.rs", "system/*.cruds", "system/Task.u"):
        scope = parse(text)
        assert scope is not None and scope.text == text
    assert parse("system/Patient.read").text == "system/Patient.rs"  # type: ignore[union-attr]


def test_split_ignores_blank_runs():
    assert split(None) == []
    assert split("   ") == []
    assert split(" system/Patient.rs \n system/Task.u\t") == ["system/Patient.rs", "system/Task.u"]


# --- Permissions ------------------------------------------------------------------------------------
def test_permissions_merge_per_type_in_cruds_order():
    permissions = Permissions.of(["system/Patient.s", "system/Patient.r", "system/Patient.c", "system/Task.u"])
    assert permissions.by_type == {"Patient": "crs", "Task": "u"}
    assert permissions.admin is False
    assert permissions.for_type("Patient") == "crs"
    assert permissions.for_type("Encounter") == ""


def test_permissions_wildcard_applies_to_every_type():
    permissions = Permissions.of(["system/*.rs", "system/Task.u"])
    for resource_type in ("Patient", "Encounter", "Task", "Anything"):
        assert permissions.allows(resource_type, Interaction.READ)
        assert permissions.allows(resource_type, Interaction.SEARCH)
        assert not permissions.allows(resource_type, Interaction.CREATE)
        assert not permissions.allows(resource_type, Interaction.DELETE)
    assert permissions.allows("Task", Interaction.UPDATE)
    assert not permissions.allows("Patient", Interaction.UPDATE)
    assert permissions.for_type("Task") == "rus"
    assert permissions.for_type("Patient") == "rs"


def test_permissions_v1_read_is_read_and_search_write_is_cud():
    read = Permissions.of(["system/*.read"])
    assert read.allows("Encounter", Interaction.READ) and read.allows("Encounter", Interaction.SEARCH)
    assert not read.allows("Encounter", Interaction.CREATE) and not read.allows("Encounter", Interaction.UPDATE)
    write = Permissions.of(["system/ServiceRequest.write"])
    assert write.for_type("ServiceRequest") == "cud"
    assert not write.allows("ServiceRequest", Interaction.READ)


def test_permissions_ignore_unknown_and_granular_scopes():
    permissions = Permissions.of(["openid", "system/Observation.rs?category=laboratory", "patient/*.read"])
    assert permissions.by_type == {} and permissions.admin is False
    assert not permissions.allows("Observation", Interaction.READ)


def test_admin_scope():
    assert Permissions.of([ADMIN_SCOPE]).admin is True
    assert Permissions.of([ADMIN_SCOPE]).by_type == {}
    assert Permissions.of(["system/*.cruds"]).admin is False
    assert Permissions.of(["peerlink.admin.extra", "peerlink"]).admin is False


def test_exact_type_names_only():
    permissions = Permissions.of(["system/Patient.rs"])
    assert not permissions.allows("patient", Interaction.READ)
    assert not permissions.allows("PatientX", Interaction.READ)
    assert not permissions.allows("*", Interaction.READ)


# --- grantable --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("asked", "allowed", "granted"),
    [
        # nothing asked: everything registered
        (None, "system/Patient.rs system/Task.u", ["system/Patient.rs", "system/Task.u"]),
        ("", "system/*.cruds peerlink.admin", ["system/*.cruds", ADMIN_SCOPE]),
        ("  ", "system/*.rs", ["system/*.rs"]),
        # exactly what is allowed
        ("system/Patient.rs", "system/Patient.rs system/Task.u", ["system/Patient.rs"]),
        # narrowed, in v2 syntax
        ("system/Patient.cruds", "system/Patient.rs", ["system/Patient.rs"]),
        ("system/Patient.write", "system/Patient.cruds", ["system/Patient.write"]),
        ("system/Patient.*", "system/Patient.rs", ["system/Patient.rs"]),
        ("system/Patient.read", "system/*.r", ["system/Patient.r"]),
        # a named type under a registered wildcard
        ("system/Encounter.rs", "system/*.read", ["system/Encounter.rs"]),
        ("system/Encounter.read", "system/*.rs", ["system/Encounter.read"]),
        # a wildcard asked of named registrations: one scope per named type
        ("system/*.cruds", "system/Patient.rs system/Task.u", ["system/Patient.rs", "system/Task.u"]),
        ("system/*.rs", "system/Patient.rs system/Task.u", ["system/Patient.rs"]),
        # a wildcard asked of a wildcard registration plus a named type's extra letters
        ("system/*.rs", "system/*.r system/Patient.s", ["system/*.r", "system/Patient.s"]),
        ("system/*.cruds", "system/*.rs system/Task.cu", ["system/*.rs", "system/Task.cu"]),
        ("system/*.read", "system/*.read", ["system/*.read"]),
        # partial intersections of several scopes
        (
            "system/Patient.crud system/Task.rs system/Encounter.s",
            "system/Patient.rs system/Task.u system/Encounter.rs",
            ["system/Patient.r", "system/Encounter.s"],
        ),
        # nothing in common
        ("system/Encounter.rs", "system/Patient.rs", []),
        ("system/Patient.cud", "system/Patient.rs", []),
        ("system/*.cud", "system/*.rs", []),
        # admin only when registered
        (ADMIN_SCOPE, "system/*.cruds", []),
        (f"system/Patient.rs {ADMIN_SCOPE}", "system/*.rs", ["system/Patient.rs"]),
        (f"{ADMIN_SCOPE} system/Patient.rs", f"system/Patient.rs {ADMIN_SCOPE}", [ADMIN_SCOPE, "system/Patient.rs"]),
        # granular, unknown and other-context scopes are never granted
        ("system/Patient.rs?gender=female", "system/*.cruds", []),
        ("system/Observation.rs?category=laboratory system/Patient.r", "system/*.cruds", ["system/Patient.r"]),
        ("openid fhirUser launch patient/*.read user/*.read", "system/*.cruds", []),
        # duplicates collapse, order of the request is kept
        ("system/Task.u system/Patient.rs system/Task.u", "system/*.cruds", ["system/Task.u", "system/Patient.rs"]),
    ],
)
def test_grantable(asked, allowed, granted):
    assert grantable(asked, allowed) == granted


def test_registration_accepts_resource_scopes_and_admin_only():
    assert valid_registration("system/*.rs  peerlink.admin") == ["system/*.rs", ADMIN_SCOPE]
    for bad in ("system/Patient.rs?x=1", "patient/*.read", "system/Patient.sr", "openid"):
        with pytest.raises(ValueError, match="not a supported scope"):
            valid_registration(f"system/Patient.rs {bad}")


# --- property: the grant never exceeds what was asked nor what is allowed ------------------------------
def _letters() -> st.SearchStrategy[str]:
    return st.sets(st.sampled_from(LETTERS), min_size=1).map(lambda s: "".join(c for c in LETTERS if c in s))


def _scope() -> st.SearchStrategy[str]:
    v2 = st.builds(lambda t, p: f"system/{t}.{p}", st.sampled_from([*TYPES, "*"]), _letters())
    v1 = st.builds(
        lambda t, p: f"system/{t}.{p}", st.sampled_from([*TYPES, "*"]), st.sampled_from(["read", "write", "*"])
    )
    other = st.sampled_from([ADMIN_SCOPE, "openid", "system/Patient.rs?gender=male", "patient/*.read"])
    return st.one_of(v2, v1, other)


def _scopes() -> st.SearchStrategy[str]:
    return st.lists(_scope(), max_size=5).map(" ".join)


@settings(max_examples=400, deadline=None)
@given(asked=_scopes(), allowed=_scopes())
def test_granted_is_the_intersection_of_asked_and_allowed(asked, allowed):
    granted = grantable(asked, allowed)
    allowed_permissions = Permissions.of(split(allowed))
    granted_permissions = Permissions.of(granted)
    if not split(asked):
        assert granted == split(allowed)
        return
    asked_permissions = Permissions.of(split(asked))
    # every granted scope is a well-formed scope a client could be registered with
    assert valid_registration(" ".join(granted)) == granted
    assert len(set(granted)) == len(granted)
    for resource_type in [*TYPES, "Goal"]:
        for interaction in Interaction:
            gets = granted_permissions.allows(resource_type, interaction)
            both = asked_permissions.allows(resource_type, interaction) and allowed_permissions.allows(
                resource_type, interaction
            )
            assert gets == both, (resource_type, interaction, granted)
    # the wildcard itself never widens
    wildcard = set(granted_permissions.by_type.get("*", ""))
    assert wildcard <= set(asked_permissions.by_type.get("*", ""))
    assert wildcard <= set(allowed_permissions.by_type.get("*", ""))
    assert granted_permissions.admin == (asked_permissions.admin and allowed_permissions.admin)
