"""Building blocks shared by the peer-support records."""

from __future__ import annotations

import re
from datetime import date
from enum import StrEnum
from typing import Annotated, Self

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, model_validator

_BCP47 = re.compile(r"^[a-zA-Z]{2,3}(-[a-zA-Z0-9]{2,8})*$")
US_STATES = frozenset(
    [
        "AL",
        "AK",
        "AZ",
        "AR",
        "CA",
        "CO",
        "CT",
        "DE",
        "DC",
        "FL",
        "GA",
        "HI",
        "ID",
        "IL",
        "IN",
        "IA",
        "KS",
        "KY",
        "LA",
        "ME",
        "MD",
        "MA",
        "MI",
        "MN",
        "MS",
        "MO",
        "MT",
        "NE",
        "NV",
        "NH",
        "NJ",
        "NM",
        "NY",
        "NC",
        "ND",
        "OH",
        "OK",
        "OR",
        "PA",
        "RI",
        "SC",
        "SD",
        "TN",
        "TX",
        "UT",
        "VT",
        "VA",
        "WA",
        "WV",
        "WI",
        "WY",
        "AS",
        "GU",
        "MP",
        "PR",
        "VI",
    ]
)


class DomainModel(BaseModel):
    """Strict input: unknown fields are refused, strings are trimmed."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, validate_assignment=False)


def _language(value: str) -> str:
    if not _BCP47.match(value):
        raise ValueError("must be a BCP-47 language tag such as 'en' or 'es-MX'")
    return value


def _npi(value: str) -> str:
    """A US National Provider Identifier: 10 digits with the Luhn check over the 80840 prefix."""
    if not re.fullmatch(r"[0-9]{10}", value):
        raise ValueError("an NPI is 10 digits")
    digits = [int(c) for c in "80840" + value]
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    if total % 10 != 0:
        raise ValueError("NPI check digit is wrong")
    return value


_ABSOLUTE_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:\S+$")
_HTTP_WITHOUT_HOST = re.compile(r"^https?:(?!//[^/\s?#]+)", re.IGNORECASE)


def _uri(value: str) -> str:
    """Any absolute URI (RFC 3986: a scheme, then no whitespace), as FHIR's Identifier.system asks:
    http(s) URLs, urn:oid:, urn:uuid:, urn:example:..., and any other scheme."""
    if not _ABSOLUTE_URI.match(value) or _HTTP_WITHOUT_HOST.match(value):
        raise ValueError("must be an absolute URI (a scheme such as https: or urn:, with no spaces)")
    return value


def _us_state(value: str) -> str:
    upper = value.upper()
    if upper not in US_STATES:
        raise ValueError("must be a two-letter US state or territory code")
    return upper


LanguageTag = Annotated[str, Field(max_length=35), AfterValidator(_language)]
Npi = Annotated[str, AfterValidator(_npi)]
Uri = Annotated[str, Field(max_length=500), AfterValidator(_uri)]
UsState = Annotated[str, AfterValidator(_us_state)]
ShortText = Annotated[str, Field(min_length=1, max_length=200)]
LongText = Annotated[str, Field(min_length=1, max_length=20_000)]
FhirDateTime = Annotated[
    str,
    Field(
        max_length=40,
        pattern=r"^[0-9]{4}(-(0[1-9]|1[0-2])(-(0[1-9]|[12][0-9]|3[01])"
        r"(T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]{1,9})?(Z|[+-]((0[0-9]|1[0-3]):[0-5][0-9]|14:00)))?)?)?$",
        description="A FHIR dateTime as it was sent: YYYY, YYYY-MM, YYYY-MM-DD or a date-time with a zone.",
    ),
]
RecordId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9\-.]+$")]


class HumanName(DomainModel):
    family: ShortText
    given: list[ShortText] = Field(default_factory=list, max_length=5)
    prefix: list[ShortText] = Field(default_factory=list, max_length=3)
    suffix: list[ShortText] = Field(default_factory=list, max_length=3)

    @property
    def text(self) -> str:
        return " ".join([*self.prefix, *self.given, self.family, *self.suffix])


class ContactSystem(StrEnum):
    PHONE = "phone"
    SMS = "sms"
    EMAIL = "email"


class ContactPoint(DomainModel):
    system: ContactSystem
    value: ShortText
    use: Annotated[str, Field(pattern=r"^(home|work|mobile|temp)$")] | None = None

    @model_validator(mode="after")
    def _check_value(self) -> Self:
        if self.system is ContactSystem.EMAIL and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", self.value):
            raise ValueError("email contact must look like name@example.org")
        if self.system in (ContactSystem.PHONE, ContactSystem.SMS) and not (
            re.fullmatch(r"\+?[0-9 ()\-.]{7,25}", self.value) and 7 <= sum(c in "0123456789" for c in self.value) <= 15
        ):
            raise ValueError("phone contact must be 7-15 digits, optionally with spaces, dashes or parentheses")
        return self


class Address(DomainModel):
    line: list[ShortText] = Field(default_factory=list, max_length=3)
    city: ShortText | None = None
    state: UsState | None = None
    postal_code: Annotated[str, Field(pattern=r"^[0-9]{5}(-[0-9]{4})?$")] | None = None


class IdentifierType(StrEnum):
    MRN = "MR"  # medical record number assigned by a hospital
    MEDICAID = "MA"  # Medicaid member id
    PROGRAM = "PI"  # the peer program's own id
    OTHER = "other"


class Identifier(DomainModel):
    type: IdentifierType
    system: Uri
    value: ShortText
    assigner: ShortText | None = Field(default=None, description="Who assigned it, e.g. the hospital's name.")


class DatePeriod(DomainModel):
    start: date
    end: date | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.end is not None and self.end < self.start:
            raise ValueError("period end is before its start")
        return self

    def covers(self, day: date) -> bool:
        return self.start <= day and (self.end is None or day <= self.end)


class Organization(DomainModel):
    name: ShortText
    identifier: Identifier | None = None
    npi: Npi | None = None


class VersionMeta(BaseModel):
    """What the store adds to every record: identity, version and timestamps."""

    model_config = ConfigDict(extra="forbid")

    id: RecordId
    version: int = Field(ge=1)
    created_at: AwareDatetime
    updated_at: AwareDatetime


class RecordMeta(VersionMeta):
    """Meta of a record that belongs to a program (the tenant)."""

    program_id: RecordId
