"""The typed shape of a payer's rules for peer support (HCPCS H0038): one TOML file per payer or
state plan, checked when it is read so a wrong file fails at start-up, never while billing.

Every rule table carries ``source`` (where it was checked) and ``why`` (why the rule is what it
is); what could not be confirmed is written in ``unverified``.
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

Token = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9\-]*$")]
Modifier = Annotated[str, Field(pattern=r"^[A-Z0-9]{2}$", description="A two-character HCPCS/CPT modifier.")]
PlaceOfService = Annotated[str, Field(pattern=r"^[0-9]{2}$", description="A CMS place-of-service code.")]
Text = Annotated[str, Field(min_length=1, max_length=4000)]


class _Data(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Sourced(_Data):
    source: Text
    why: Text
    unverified: Text | None = None


class UnitMethod(StrEnum):
    CMS_8_MINUTE = "cms-8-minute"
    """A unit per 15 minutes, the last one earned at 8 minutes (Medicare's rule for timed codes)."""
    FULL_15_MINUTE = "full-15-minute"
    """Only complete 15-minute units."""
    PER_SESSION = "per-session"
    """One unit per session that lasts at least ``min_minutes``."""


class Units(_Sourced):
    method: UnitMethod
    minutes_per_unit: int = Field(default=15, ge=1, le=240)
    min_minutes: int = Field(default=1, ge=1, le=240, description="Per-session: the shortest session billed.")
    max_per_session: int | None = Field(default=None, ge=1, le=96)

    def count(self, minutes: int) -> int:
        """Billable units of a session lasting ``minutes`` under this method."""
        if minutes < 0:
            raise ValueError("duration is negative")
        if self.method is UnitMethod.PER_SESSION:
            units = 1 if minutes >= self.min_minutes else 0
        elif self.method is UnitMethod.FULL_15_MINUTE:
            units = minutes // self.minutes_per_unit
        else:
            half = self.minutes_per_unit // 2 + 1  # 8 of 15
            units = (minutes + self.minutes_per_unit - half) // self.minutes_per_unit
        return units if self.max_per_session is None else min(units, self.max_per_session)


class PeriodKind(StrEnum):
    DAY = "day"
    ROLLING_MONTHS = "rolling-months"
    """The months ending on the date of service (e.g. 6: from the day after the same date 6 months earlier)."""
    YEAR = "year"
    """A calendar or fiscal year starting on the first of ``year_starts_month``."""
    EPISODE = "episode"
    """An episode of care: the sessions under one order (accepted referral)."""


class Period(_Data):
    kind: PeriodKind
    months: int | None = Field(default=None, ge=1, le=24, description="For rolling-months.")
    year_starts_month: int = Field(default=1, ge=1, le=12, description="For year: 7 = a July-June fiscal year.")

    @model_validator(mode="after")
    def _months(self) -> Self:
        if (self.kind is PeriodKind.ROLLING_MONTHS) != (self.months is not None):
            raise ValueError("months is given exactly when the period is rolling-months")
        return self


class Cap(_Sourced, Period):
    units: int = Field(ge=1, le=100_000, description="Most units in the period.")
    authorization_exceeds: bool = Field(
        default=False, description="A prior authorization on file for the date lets units go past this cap."
    )


class PriorAuthorization(_Sourced, Period):
    after_units: int = Field(ge=0, le=100_000, description="Units in the period billable without authorization.")


class Group(_Sourced):
    modifiers: list[Modifier] = Field(default_factory=list, max_length=2)
    max_participants: int | None = Field(default=None, ge=2, le=200)
    rate_per_unit: Decimal | None = Field(default=None, ge=0, description="When groups are paid another rate.")


class Delivery(_Data):
    allowed: bool
    modifiers: list[Modifier] = Field(default_factory=list, max_length=2)
    place_of_service: PlaceOfService | None = Field(default=None, description="Used when the session names none.")
    places_allowed: list[PlaceOfService] = Field(default_factory=list, description="Empty: any.")


class Places(_Sourced):
    in_person: Delivery
    video: Delivery
    audio: Delivery


class Credentials(_Sourced):
    accepted_states: list[str] = Field(
        default_factory=list, description="States whose certification the payer takes (empty: any)."
    )
    modifiers: dict[Token, list[Modifier]] = Field(
        default_factory=dict, description="Credential (see readiness.credential_of) -> the modifiers it adds."
    )


class Documentation(_Sourced):
    signed_note: bool = True
    current_certification: bool = True
    order: bool = Field(default=False, description="An accepted referral (service order) before the session.")
    diagnosis: bool = False
    diagnosis_prefixes: list[Annotated[str, Field(pattern=r"^[A-Z][0-9A-Z.]{0,7}$")]] = Field(
        default_factory=list, description="ICD-10-CM code prefixes the payer accepts (empty: any)."
    )
    supervision: bool = Field(default=False, description="Supervision is required (not recorded in PeerLink yet).")
    min_age: int | None = Field(default=None, ge=0, le=120)


class Rate(_Sourced):
    per_unit: Decimal | None = Field(default=None, ge=0, description="None: unknown; lines are blocked.")


class ClaimRoute(_Sourced):
    """Where an 837P for this payer goes: the payer as loop 2010BB names it and the receiver (1000B)."""

    payer_name: Annotated[str, Field(min_length=1, max_length=60)]
    payer_id: Annotated[str, Field(min_length=2, max_length=80, pattern=r"^[A-Za-z0-9\-]+$")] = Field(
        description="The payer's electronic id (NM109 of 2010BB) as the program's clearinghouse lists it."
    )
    receiver_name: Annotated[str, Field(min_length=1, max_length=60)]
    receiver_id: Annotated[str, Field(min_length=2, max_length=15, pattern=r"^[A-Za-z0-9\-]+$")] = Field(
        description="The receiver's id (NM109 of 1000B; ISA08 and GS03 too)."
    )
    claim_filing: Annotated[str, Field(pattern=r"^[0-9A-Z]{2}$")] = Field(
        default="MC", description="SBR09 claim filing indicator: MC Medicaid, HM HMO, CI commercial."
    )


class PayerRules(_Data):
    id: Token
    name: Text
    state: Annotated[str, Field(pattern=r"^[A-Z]{2}$")] | None = None
    effective: Annotated[str, Field(pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")]
    source: Text
    why: Text
    unverified: Text | None = None
    payors: list[Annotated[str, Field(min_length=1, max_length=300)]] = Field(
        default_factory=list,
        description="How a clinic's FHIR Coverage.payor names this payer: organisation names (any case) or "
        "'system|value' identifiers. A Coverage received with a referral is recorded under the first rule set "
        "that lists its payor, else under the generic one.",
    )
    procedure_code: Annotated[str, Field(pattern=r"^[A-Z][0-9]{4}$")]
    procedure_modifiers: list[Modifier] = Field(default_factory=list, max_length=2)
    units: Units
    caps: list[Cap] = Field(default_factory=list)
    prior_authorization: PriorAuthorization | None = None
    group: Group
    places: Places
    credentials: Credentials
    documentation: Documentation
    rate: Rate
    claims: ClaimRoute | None = Field(
        default=None, description="How claims reach the payer; without it an 837P export is refused."
    )
