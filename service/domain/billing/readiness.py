"""Claim readiness: for each finished session, what a claim line would carry (units, modifiers,
place of service, charge, diagnosis, order, authorization) under the payer's rules, and whether it
is ready or blocked, with every blocking reason as a stable code and a message a biller can act on.

Pure: the records layer loads the rows (``service.records.billing``); nothing here does I/O.
Sessions are judged oldest first; only ready lines count toward caps and prior authorization, so
a blocked session never uses up units, and no set of ready lines exceeds a cap unless an
authorization on file allows it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum

from pydantic import BaseModel, Field

from service.domain.coverage import Authorization, Coverage
from service.domain.encounter import EncounterStatus, Modality
from service.domain.program import Program
from service.domain.referral import Referral, ReferralStatus
from service.domain.specialist import PeerSpecialist

from . import DEFAULT_PAYER, PayerRegistry
from .checks import Blocked, document_checks
from .facts import SessionFacts
from .periods import Entry, Ledger, describe
from .rules import Delivery, PayerRules

MAX_MODIFIERS = 4  # an 837P service line (SV101-3..6) carries at most four
ORDER_STATUSES = frozenset({ReferralStatus.ACCEPTED, ReferralStatus.IN_PROGRESS, ReferralStatus.COMPLETED})
_ICD10 = re.compile(r"^[A-TV-Z][0-9][0-9A-Z](\.?[0-9A-Z]{1,4})?$")


class Status(StrEnum):
    READY = "ready"
    BLOCKED = "blocked"


class Reason(BaseModel):
    code: str = Field(description="Stable code, e.g. note-unsigned, cap-exceeded, no-coverage.")
    message: str = Field(description="What is wrong and what to do about it.")


class ReadinessLine(BaseModel):
    """One session as a claim line would carry it, and whether it can be billed."""

    session_id: str
    participant_id: str
    specialist_id: str
    date_of_service: date
    start: datetime
    end: datetime
    minutes: int
    modality: Modality
    group_size: int | None
    payer: str | None = Field(description="The payer rule set applied (None: no coverage on the date).")
    rules: str = Field(description="The rule set the line was judged by (the generic one without coverage).")
    coverage_id: str | None
    member_id: str | None
    plan: str | None
    procedure_code: str
    modifiers: list[str]
    units: int
    place_of_service: str
    rate_per_unit: Decimal | None
    charge: Decimal | None
    diagnosis_codes: list[str]
    order_id: str | None = Field(description="The accepted referral standing for the service order.")
    authorization_number: str | None
    rendering_npi: str | None
    status: Status
    reasons: list[Reason]
    warnings: list[Reason] = Field(description="Not blocking, but worth a look (e.g. supervision not recorded).")


def credential_of(specialist: PeerSpecialist) -> str:
    """The credential a payer's ``[credentials] modifiers`` table is keyed by. PeerLink records a
    state certification (every specialist has one), not a degree level, so this is one value."""
    return "certified-peer-specialist"


def coverage_on(coverages: Iterable[Coverage], day: date) -> Coverage | None:
    found = [c for c in coverages if c.covers(day)]
    return min(found, key=lambda c: (c.rank, c.id)) if found else None


def order_for(referrals: Iterable[Referral], day: date) -> Referral | None:
    """The latest accepted referral ordered on or before the day."""
    found = [r for r in referrals if r.status in ORDER_STATUSES and r.requested_at.date() <= day]
    return max(found, key=lambda r: (r.requested_at, r.id)) if found else None


def diagnosis_of(order: Referral | None) -> list[str]:
    if order is None or order.reason.code is None:
        return []
    code = order.reason.code.strip().upper()
    system = (order.reason.system or "").lower()
    return [code] if _ICD10.match(code) and (not system or "icd-10" in system or "icd10" in system) else []


def delivery_of(rules: PayerRules, modality: Modality) -> Delivery:
    if modality is Modality.VIDEO:
        return rules.places.video
    if modality is Modality.PHONE:
        return rules.places.audio
    return rules.places.in_person


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


@dataclass
class Assessor:
    """Judges sessions oldest first, keeping a ledger of ready units per participant and payer."""

    registry: PayerRegistry
    program: Program
    ledgers: dict[tuple[str, str], Ledger] = field(default_factory=dict)

    def judge(self, facts: SessionFacts) -> ReadinessLine:
        enc = facts.encounter
        assert enc.end is not None
        day = enc.start.date()
        minutes = int((enc.end - enc.start).total_seconds() // 60)
        coverage = coverage_on(facts.coverages, day)
        blocked = Blocked()
        if coverage is None:
            blocked.add("no-coverage", f"no coverage on file covers {day}: add the participant's coverage")
            rules = self.registry.get(DEFAULT_PAYER)
        elif coverage.payer in self.registry.payers:
            rules = self.registry.get(coverage.payer)
        else:
            blocked.add("payer-rules-unknown", f"no rule set named {coverage.payer!r}: fix the coverage's payer")
            rules = self.registry.get(DEFAULT_PAYER)
        units = rules.units.count(minutes)
        if units == 0:
            blocked.add(
                "no-billable-units", f"{minutes} minutes make no unit under {rules.units.method.value} counting"
            )
        delivery = delivery_of(rules, enc.modality)
        if not delivery.allowed:
            blocked.add("modality-not-covered", f"{rules.id} does not pay {enc.modality.value} sessions")
        place = enc.place_of_service or delivery.place_of_service or rules.places.in_person.place_of_service or "11"
        if delivery.places_allowed and place not in delivery.places_allowed:
            blocked.add(
                "place-of-service-not-allowed",
                f"place of service {place} is not one {rules.id} takes for {enc.modality.value} sessions "
                f"({', '.join(delivery.places_allowed)}): correct the session's place_of_service",
            )
        modifiers = list(rules.procedure_modifiers)
        rate = rules.rate.per_unit
        if enc.is_group:
            modifiers += rules.group.modifiers
            rate = rules.group.rate_per_unit if rules.group.rate_per_unit is not None else rate
            limit = rules.group.max_participants
            if limit is not None and enc.group_size is None:
                blocked.add("group-size-missing", f"record how many attended: {rules.id} allows at most {limit}")
            elif limit is not None and enc.group_size is not None and enc.group_size > limit:
                blocked.add("group-over-limit", f"{enc.group_size} attended; {rules.id} pays groups of at most {limit}")
        modifiers += rules.credentials.modifiers.get(credential_of(facts.specialist), [])
        modifiers = _unique([*modifiers, *delivery.modifiers])
        if len(modifiers) > MAX_MODIFIERS:
            blocked.add("too-many-modifiers", f"{len(modifiers)} modifiers; a claim line carries at most 4")
        order = order_for(facts.referrals, day)
        diagnoses = diagnosis_of(order)
        warnings = document_checks(blocked, rules, facts, day, order, diagnoses)
        if facts.specialist.npi is None:
            blocked.add("rendering-npi-missing", "the peer specialist has no NPI: add it to the specialist")
        if self.program.npi is None:
            blocked.add("billing-npi-missing", "the program has no NPI: add it to the program")
        if rate is None:
            blocked.add(
                "rate-unknown",
                f"{rules.id} has no rate per unit: set the contracted rate in a program rule file",
            )
        authorization = None
        if coverage is not None and not blocked.reasons and units > 0:
            authorization = self._limits(blocked, rules, coverage, day, units, order)
        line = ReadinessLine(
            session_id=enc.id,
            participant_id=enc.participant_id,
            specialist_id=enc.specialist_id,
            date_of_service=day,
            start=enc.start,
            end=enc.end,
            minutes=minutes,
            modality=enc.modality,
            group_size=enc.group_size,
            payer=coverage.payer if coverage is not None else None,
            rules=rules.id,
            coverage_id=coverage.id if coverage is not None else None,
            member_id=coverage.member_id if coverage is not None else None,
            plan=coverage.plan if coverage is not None else None,
            procedure_code=rules.procedure_code,
            modifiers=modifiers,
            units=units,
            place_of_service=place,
            rate_per_unit=rate,
            charge=(rate * units).quantize(Decimal("0.01")) if rate is not None else None,
            diagnosis_codes=diagnoses,
            order_id=order.id if order is not None else None,
            authorization_number=authorization.number if authorization is not None else None,
            rendering_npi=facts.specialist.npi,
            status=Status.BLOCKED if blocked.reasons else Status.READY,
            reasons=[Reason(code=c, message=m) for c, m in blocked.reasons],
            warnings=[Reason(code=c, message=m) for c, m in warnings],
        )
        if line.status is Status.READY and coverage is not None:
            self._ledger(enc.participant_id, coverage.payer).add(
                Entry(day, units, line.order_id, line.authorization_number)
            )
        return line

    def _ledger(self, participant_id: str, payer: str) -> Ledger:
        return self.ledgers.setdefault((participant_id, payer), Ledger())

    def _authorization(self, ledger: Ledger, coverage: Coverage, day: date, units: int) -> Authorization | None:
        for candidate in coverage.authorizations:
            if candidate.covers(day) and ledger.authorized_used(candidate.number) + units <= candidate.units:
                return candidate
        return None

    def _limits(
        self, blocked: Blocked, rules: PayerRules, coverage: Coverage, day: date, units: int, order: Referral | None
    ) -> Authorization | None:
        """Caps and prior authorization against the ready units so far; the authorization used, if any."""
        ledger = self._ledger(coverage.participant_id, coverage.payer)
        order_id = order.id if order is not None else None
        needed = False
        for cap in rules.caps:
            used = ledger.used(cap, day, order_id)
            if used + units > cap.units:
                if cap.authorization_exceeds:
                    needed = True
                    continue
                blocked.add(
                    "cap-exceeded",
                    f"{used} of {cap.units} units in {describe(cap)} are already ready; this session's {units} "
                    f"would pass the cap ({max(cap.units - used, 0)} left)",
                )
        pa = rules.prior_authorization
        if pa is not None and ledger.used(pa, day, order_id) + units > pa.after_units:
            needed = True
        if not needed or blocked.reasons:
            return None
        found = self._authorization(ledger, coverage, day, units)
        if found is None:
            blocked.add(
                "prior-authorization-needed",
                f"the units past {rules.id}'s limit need prior authorization: record the payer's authorization "
                f"(number, period, units) on coverage {coverage.id}",
            )
        return found


def assess(sessions: Iterable[SessionFacts], registry: PayerRegistry, program: Program) -> list[ReadinessLine]:
    """Every finished session's readiness, oldest first (only ready lines count toward limits)."""
    assessor = Assessor(registry, program)
    ordered = sorted(
        (s for s in sessions if s.encounter.status is EncounterStatus.FINISHED and s.encounter.end is not None),
        key=lambda s: (s.encounter.start, s.encounter.id),
    )
    return [assessor.judge(s) for s in ordered]
