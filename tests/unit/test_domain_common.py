"""Unit tests for the shared building blocks (service.domain.common), the program and the error classes."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from service.domain.common import (
    US_STATES,
    Address,
    ContactPoint,
    ContactSystem,
    DatePeriod,
    DomainModel,
    HumanName,
    Identifier,
    IdentifierType,
    LanguageTag,
    Npi,
    Organization,
    RecordId,
    RecordMeta,
    Uri,
    UsState,
    VersionMeta,
)
from service.domain.errors import (
    BadRequest,
    Conflict,
    IllegalTransition,
    ImmutableRecord,
    NotFound,
    PeerLinkError,
    RuleViolation,
)
from service.domain.program import Program, ProgramFields

VALID_NPI = "1234567893"
CREATED = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


class _Holder(DomainModel):
    """A tiny model carrying each annotated type, so they run with the domain's config (trimming, strictness)."""

    language: LanguageTag | None = None
    npi: Npi | None = None
    uri: Uri | None = None
    state: UsState | None = None
    record_id: RecordId | None = None


def messages(error: ValidationError) -> list[str]:
    return [str(e["msg"]) for e in error.errors()]


def invalid(model: type[BaseModel], data: dict[str, Any]) -> ValidationError:
    """Validate ``data`` expecting failure; return the error for message checks."""
    with pytest.raises(ValidationError) as caught:
        model.model_validate(data)
    return caught.value


def npi_check_digit(base9: str) -> str:
    """The check digit as CMS documents it: Luhn over the 9 digits, plus the constant 24 for prefix 80840."""
    total = 24
    for i, ch in enumerate(reversed(base9)):
        d = int(ch)
        if i % 2 == 0:  # the rightmost base digit is doubled
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return str((10 - total % 10) % 10)


# --- BCP-47 language tags -------------------------------------------------------------------------


@pytest.mark.parametrize("tag", ["en", "es", "es-MX", "haw", "zh-Hant", "zh-Hant-TW", "sgn-ASE", "en-US-POSIX"])
def test_language_tag_accepts_bcp47(tag: str) -> None:
    assert _Holder(language=tag).language == tag


@pytest.mark.parametrize("tag", ["e", "english", "en_US", "en-", "-en", "12", "en-toolongsub", "en US", "es-MX!", "ñu"])
def test_language_tag_rejects_non_bcp47(tag: str) -> None:
    error = invalid(_Holder, {"language": tag})
    assert any("BCP-47" in m for m in messages(error))


def test_language_tag_is_trimmed_before_checking() -> None:
    assert _Holder(language="  es-MX ").language == "es-MX"


def test_language_tag_max_length() -> None:
    too_long = "en" + "-abcdefgh" * 4  # 38 characters, otherwise well formed
    assert len(too_long) > 35
    error = invalid(_Holder, {"language": too_long})
    assert error.errors()[0]["type"] == "string_too_long"


# --- NPI ------------------------------------------------------------------------------------------


def test_npi_valid_check_digit() -> None:
    assert _Holder(npi=VALID_NPI).npi == VALID_NPI


def test_npi_wrong_check_digit() -> None:
    error = invalid(_Holder, {"npi": "1234567890"})
    assert messages(error) == ["Value error, NPI check digit is wrong"]


@pytest.mark.parametrize("value", ["123456789", "12345678931", "12345abcde", "123-456-78", "", "123456789X"])
def test_npi_must_be_ten_digits(value: str) -> None:
    error = invalid(_Holder, {"npi": value})
    assert messages(error) == ["Value error, an NPI is 10 digits"]


def test_npi_surrounding_whitespace_is_trimmed() -> None:
    assert Organization(name="Clinic", npi=f" {VALID_NPI} ").npi == VALID_NPI


@given(st.from_regex(r"\A[0-9]{9}\Z"))
def test_npi_exactly_one_check_digit_is_valid(base: str) -> None:
    good = npi_check_digit(base)
    assert _Holder(npi=base + good).npi == base + good
    for digit in "0123456789":
        if digit != good:
            with pytest.raises(ValidationError, match="NPI check digit is wrong"):
                _Holder(npi=base + digit)


@pytest.mark.parametrize("value", ["\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668\u0669\u0663", "123456789\uff13"])
def test_npi_rejects_non_ascii_digits(value: str) -> None:
    with pytest.raises(ValidationError, match="an NPI is 10 digits"):
        _Holder(npi=value)


# --- URIs -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "uri",
    [
        "https://hospital.example.org/mrn",
        "http://example.org",
        "urn:oid:2.16.840.1.113883.4.6",
        "urn:uuid:6f1c0e2a-7d1b-4d4f-9d4e-1a2b3c4d5e6f",
        # any absolute URI is a legal Identifier.system in FHIR
        "urn:example:clinic:referrals",
        "urn:isbn:0451450523",
        "ftp://example.org/x",
        "mailto:a@example.org",
    ],
)
def test_uri_accepts_any_absolute_uri(uri: str) -> None:
    assert _Holder(uri=uri).uri == uri


@pytest.mark.parametrize(
    "uri",
    [
        "hospital.example.org/mrn",
        "/relative/path",
        "urn",
        "1urn:x",
        "https://exa mple.org",
        "urn:example: spaced",
        "https://",
        "http:/no-host",
        "",
    ],
)
def test_uri_rejects_what_is_not_an_absolute_uri(uri: str) -> None:
    error = invalid(_Holder, {"uri": uri})
    assert any("absolute URI" in m for m in messages(error))


def test_uri_max_length() -> None:
    error = invalid(_Holder, {"uri": "https://example.org/" + "a" * 500})
    assert error.errors()[0]["type"] == "string_too_long"


# --- US states ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "stored"), [("OR", "OR"), ("or", "OR"), ("Dc", "DC"), ("PR", "PR"), ("GU", "GU")])
def test_us_state_accepts_and_uppercases(value: str, stored: str) -> None:
    assert _Holder(state=value).state == stored


@pytest.mark.parametrize("value", ["XX", "Oregon", "O", "ORE", "", "ON"])
def test_us_state_rejects_unknown_codes(value: str) -> None:
    error = invalid(_Holder, {"state": value})
    assert messages(error) == ["Value error, must be a two-letter US state or territory code"]


def test_us_states_are_the_fifty_states_dc_and_five_territories() -> None:
    assert len(US_STATES) == 56
    assert all(len(code) == 2 and code.isupper() for code in US_STATES)


# --- record ids -----------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["a", "abc-123", "0f.1-A", "x" * 64])
def test_record_id_accepts(value: str) -> None:
    assert _Holder(record_id=value).record_id == value


@pytest.mark.parametrize("value", ["", "a/b", "a b", "x" * 65, "a_b", "é"])
def test_record_id_rejects(value: str) -> None:
    invalid(_Holder, {"record_id": value})


# --- contact points -------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["pat@example.org", "first.last+tag@mail.example.co.uk"])
def test_email_contact_accepts(value: str) -> None:
    assert ContactPoint(system=ContactSystem.EMAIL, value=value).value == value


@pytest.mark.parametrize("value", ["pat@example", "pat example.org", "@example.org", "pat@@example.org", "a b@c.org"])
def test_email_contact_rejects(value: str) -> None:
    error = invalid(ContactPoint, {"system": "email", "value": value})
    assert messages(error) == ["Value error, email contact must look like name@example.org"]


@pytest.mark.parametrize("system", ["phone", "sms"])
@pytest.mark.parametrize("value", ["+1 (503) 555-0100", "503.555.0100", "5550100", "+44 20 7946 0958"])
def test_phone_contact_accepts(system: str, value: str) -> None:
    assert ContactPoint.model_validate({"system": system, "value": value}).value == value


@pytest.mark.parametrize("system", ["phone", "sms"])
@pytest.mark.parametrize("value", ["555010", "555 01", "call me", "pat@example.org", "503 555 0100 ext 12", "1" * 21])
def test_phone_contact_rejects(system: str, value: str) -> None:
    error = invalid(ContactPoint, {"system": system, "value": value})
    assert messages(error) == [
        "Value error, phone contact must be 7-15 digits, optionally with spaces, dashes or parentheses"
    ]


@pytest.mark.parametrize("value", ["-------", "(  )  .  -", "+..........."])
def test_phone_contact_needs_digits(value: str) -> None:
    invalid(ContactPoint, {"system": "phone", "value": value})


def test_contact_use_codes() -> None:
    assert ContactPoint.model_validate({"system": "phone", "value": "5035550100", "use": "mobile"}).use == "mobile"
    error = invalid(ContactPoint, {"system": "phone", "value": "5035550100", "use": "fax"})
    assert error.errors()[0]["loc"] == ("use",)


def test_contact_unknown_system() -> None:
    error = invalid(ContactPoint, {"system": "fax", "value": "5035550100"})
    assert error.errors()[0]["loc"] == ("system",)


# --- addresses, names, identifiers, organisations -------------------------------------------------


@pytest.mark.parametrize("code", ["97201", "97201-1234"])
def test_postal_code_accepts_zip_and_zip4(code: str) -> None:
    assert Address(postal_code=code).postal_code == code


@pytest.mark.parametrize("code", ["9720", "972011", "97201-12", "ABCDE", "97201 1234"])
def test_postal_code_rejects(code: str) -> None:
    error = invalid(Address, {"postal_code": code})
    assert error.errors()[0]["loc"] == ("postal_code",)


def test_postal_code_rejects_non_ascii_digits() -> None:
    invalid(Address, {"postal_code": "\u0661\u0662\u0663\u0664\u0665"})  # Arabic-Indic 12345


def test_address_state_is_checked_and_normalised() -> None:
    assert Address.model_validate({"state": "wa"}).state == "WA"
    error = invalid(Address, {"state": "ZZ"})
    assert error.errors()[0]["loc"] == ("state",)


def test_address_line_limit() -> None:
    invalid(Address, {"line": ["1", "2", "3", "4"]})


def test_human_name_text_orders_parts() -> None:
    name = HumanName(family="Example", given=["Robin", "Lee"], prefix=["Dr."], suffix=["Jr."])
    assert name.text == "Dr. Robin Lee Example Jr."
    assert HumanName(family="Solo").text == "Solo"


def test_human_name_family_must_not_be_blank() -> None:
    error = invalid(HumanName, {"family": "   "})
    assert error.errors()[0]["type"] == "string_too_short"


def test_human_name_strips_whitespace() -> None:
    name = HumanName.model_validate({"family": "  Example ", "given": [" Robin "]})
    assert (name.family, name.given) == ("Example", ["Robin"])


def test_human_name_limits() -> None:
    invalid(HumanName, {"family": "X", "given": ["a"] * 6})
    invalid(HumanName, {"family": "x" * 201})


def test_identifier_system_must_be_a_uri() -> None:
    ok = Identifier.model_validate({"type": "MR", "system": "urn:oid:1.2.3", "value": "42"})
    assert ok.type is IdentifierType.MRN
    error = invalid(Identifier, {"type": "MR", "system": "hospital-mrn", "value": "42"})
    assert error.errors()[0]["loc"] == ("system",)


def test_identifier_type_codes() -> None:
    assert {t.value for t in IdentifierType} == {"MR", "MA", "PI", "other"}
    invalid(Identifier, {"type": "SSN", "system": "urn:oid:1.2.3", "value": "42"})


def test_organization_npi_is_checked() -> None:
    assert Organization(name="Clinic", npi=VALID_NPI).npi == VALID_NPI
    error = invalid(Organization, {"name": "Clinic", "npi": "1234567890"})
    assert error.errors()[0]["loc"] == ("npi",)


# --- periods --------------------------------------------------------------------------------------


def test_period_end_before_start_is_refused() -> None:
    error = invalid(DatePeriod, {"start": "2024-03-02", "end": "2024-03-01"})
    assert messages(error) == ["Value error, period end is before its start"]


def test_period_single_day_and_open_ended_are_fine() -> None:
    assert DatePeriod(start=date(2024, 3, 1), end=date(2024, 3, 1)).end == date(2024, 3, 1)
    assert DatePeriod(start=date(2024, 3, 1)).end is None


@pytest.mark.parametrize(
    ("day", "covered"),
    [
        (date(2024, 2, 29), False),
        (date(2024, 3, 1), True),
        (date(2024, 3, 15), True),
        (date(2024, 3, 31), True),
        (date(2024, 4, 1), False),
    ],
)
def test_period_covers_is_inclusive(day: date, covered: bool) -> None:
    assert DatePeriod(start=date(2024, 3, 1), end=date(2024, 3, 31)).covers(day) is covered


def test_open_period_covers_the_future() -> None:
    period = DatePeriod(start=date(2024, 3, 1))
    assert period.covers(date(2999, 1, 1))
    assert not period.covers(date(2024, 2, 29))


# --- strictness -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "data"),
    [
        (HumanName, {"family": "X", "nickname": "Y"}),
        (ContactPoint, {"system": "email", "value": "a@example.org", "rank": 1}),
        (Address, {"country": "US"}),
        (Identifier, {"type": "MR", "system": "urn:oid:1", "value": "1", "period": {}}),
        (DatePeriod, {"start": "2024-01-01", "finish": "2024-02-01"}),
        (Organization, {"name": "Clinic", "id": "x"}),
    ],
)
def test_unknown_fields_are_refused(model: type[BaseModel], data: dict[str, Any]) -> None:
    error = invalid(model, data)
    assert [e["type"] for e in error.errors()] == ["extra_forbidden"]


# --- record meta ----------------------------------------------------------------------------------


def meta(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": "rec-1",
        "program_id": "prog-1",
        "version": 1,
        "created_at": CREATED,
        "updated_at": CREATED,
    }
    data.update(overrides)
    return data


def test_record_meta_valid() -> None:
    record = RecordMeta.model_validate(meta())
    assert (record.id, record.program_id, record.version) == ("rec-1", "prog-1", 1)


@pytest.mark.parametrize(
    ("overrides", "loc"),
    [
        ({"version": 0}, "version"),
        ({"created_at": datetime(2024, 5, 1, 12, 0)}, "created_at"),  # naive
        ({"updated_at": "yesterday"}, "updated_at"),
        ({"id": "a b"}, "id"),
        ({"program_id": ""}, "program_id"),
        ({"etag": "W/1"}, "etag"),
    ],
)
def test_record_meta_invalid(overrides: dict[str, Any], loc: str) -> None:
    error = invalid(RecordMeta, meta(**overrides))
    assert error.errors()[0]["loc"] == (loc,)


def test_record_meta_needs_program_id_but_version_meta_does_not_allow_it() -> None:
    data = meta()
    del data["program_id"]
    assert invalid(RecordMeta, data).errors()[0]["loc"] == ("program_id",)
    assert VersionMeta.model_validate(data).id == "rec-1"
    assert invalid(VersionMeta, meta()).errors()[0]["type"] == "extra_forbidden"


# --- program --------------------------------------------------------------------------------------


def program_fields(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"code": "demo", "name": "Demo Program", "identifier_system": "https://peer.example.org/ids"}
    data.update(overrides)
    return data


def test_program_valid_and_as_record() -> None:
    fields = ProgramFields.model_validate(program_fields(npi=VALID_NPI))
    assert fields.code == "demo"
    version_meta = {k: v for k, v in meta().items() if k != "program_id"}
    record = Program.model_validate({**program_fields(), **version_meta})
    assert (record.id, record.version) == ("rec-1", 1)
    # a program is the tenant itself: it has no program_id
    error = invalid(Program, {**program_fields(), **meta()})
    assert error.errors()[0]["type"] == "extra_forbidden"


@pytest.mark.parametrize("code", ["Demo", "-demo", "d", "demo_1", "d" * 41, "de mo"])
def test_program_code_slug(code: str) -> None:
    error = invalid(ProgramFields, program_fields(code=code))
    assert error.errors()[0]["loc"] == ("code",)


@pytest.mark.parametrize("code", ["de", "demo-2", "0peer", "d" * 40])
def test_program_code_slug_accepts(code: str) -> None:
    assert ProgramFields.model_validate(program_fields(code=code)).code == code


@pytest.mark.parametrize(
    ("overrides", "loc"),
    [
        ({"identifier_system": "peer-ids"}, "identifier_system"),
        ({"npi": "1234567890"}, "npi"),
        ({"name": ""}, "name"),
        ({"slug": "demo"}, "slug"),
    ],
)
def test_program_invalid_fields(overrides: dict[str, Any], loc: str) -> None:
    error = invalid(ProgramFields, program_fields(**overrides))
    assert error.errors()[0]["loc"] == (loc,)


def test_program_telecom_is_checked() -> None:
    error = invalid(ProgramFields, program_fields(telecom=[{"system": "email", "value": "not-an-email"}]))
    assert error.errors()[0]["loc"] == ("telecom", 0)


# --- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "status", "code", "parent"),
    [
        (BadRequest, 400, "invalid", PeerLinkError),
        (NotFound, 404, "not-found", PeerLinkError),
        (Conflict, 409, "conflict", PeerLinkError),
        (IllegalTransition, 409, "conflict", Conflict),
        (ImmutableRecord, 409, "conflict", Conflict),
        (RuleViolation, 422, "business-rule", PeerLinkError),
    ],
)
def test_error_classes(cls: type[PeerLinkError], status: int, code: str, parent: type[Exception]) -> None:
    assert issubclass(cls, parent)
    assert (cls.status, cls.fhir_code) == (status, code)
    error = cls("something is off", errors=[{"loc": ["x"]}])
    assert (str(error), error.detail, error.errors) == ("something is off", "something is off", [{"loc": ["x"]}])
    assert cls("no details").errors == []
