"""The 837P professional claim, ASC X12 005010X222A1, one service line per claim.

Loops written: ISA/GS/ST envelope and BHT; 1000A submitter and 1000B receiver; 2000A billing
provider (PRV*BI*PXC taxonomy) with 2010AA (NPI, address, REF*EI tax id); per claim a 2000B
subscriber (the patient is the subscriber: Medicaid members are) with 2010BA (member id, DMG) and
2010BB payer; 2300 CLM (place of service and frequency code; REF*F8 the original claim for a
replacement, REF*G1 a prior authorization), HI diagnoses (ABK principal, ABF others); 2310B
rendering provider (PRV*PE*PXC); 2400 LX/SV1 (HC:procedure:modifiers, UN units, diagnosis pointer),
DTP*472 date of service, REF*6R line item control number. SE, GE and IEA carry the counts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from .segments import COMPONENT, amount, d8, isa, segment, text

VERSION = "005010X222A1"
RENDERING_TAXONOMY = "175T00000X"
"""NUCC taxonomy 'Peer Specialist' (175T00000X, listed in the US Core provider-role value set)."""
ORIGINAL = "1"
REPLACEMENT = "7"
MAX_CLAIMS = 5000
"""Claims in one transaction set: the implementation guide advises at most 5,000 CLM per ST."""
_GENDER = {"female": "F", "male": "M"}


@dataclass(frozen=True)
class Party:
    name: str
    id: str


@dataclass(frozen=True)
class Place:
    line: str
    city: str
    state: str
    postal_code: str


@dataclass(frozen=True)
class BillingProvider:
    name: str
    npi: str
    tax_id: str
    address: Place
    taxonomy: str | None
    phone: str | None


@dataclass(frozen=True)
class Person:
    family: str
    given: str


@dataclass(frozen=True)
class ClaimLine:
    """One claim: one service line for one session."""

    claim_number: str
    line_control: str
    frequency: str
    original_claim: str | None
    member_id: str
    subscriber: Person
    birth_date: date
    gender: str
    address: Place | None
    sequence: str
    plan: str | None
    group_number: str | None
    rendering: Person
    rendering_npi: str
    procedure: str
    modifiers: list[str]
    units: int
    charge: Decimal
    place_of_service: str
    service_date: date
    diagnoses: list[str]
    authorization: str | None = None


@dataclass(frozen=True)
class Interchange:
    sender: Party
    receiver: Party
    payer: Party
    claim_filing: str
    provider: BillingProvider
    interchange_control: int
    group_control: int
    transaction_control: int
    created: datetime
    usage: str = "P"
    claims: list[ClaimLine] = field(default_factory=list)


def _name(kind: str, entity: str, last: str, first: str, qualifier: str, ident: str) -> str:
    return segment("NM1", kind, entity, text(last, 60), text(first, 35), "", "", "", qualifier, ident)


def _place(place: Place) -> list[str]:
    postal = place.postal_code.replace("-", "")
    return [segment("N3", text(place.line, 55)), segment("N4", text(place.city, 30), place.state, postal)]


def _claim(claim: ClaimLine, hl: int, parent: int, payer: Party, filing: str) -> list[str]:
    plan = "" if claim.group_number else text(claim.plan or "", 60)
    out = [
        segment("HL", str(hl), str(parent), "22", "0"),
        segment("SBR", claim.sequence, "18", text(claim.group_number or "", 50), plan, "", "", "", "", filing),
        _name("IL", "1", claim.subscriber.family, claim.subscriber.given, "MI", claim.member_id),
    ]
    if claim.address is not None:
        out += _place(claim.address)
    out.append(segment("DMG", "D8", d8(claim.birth_date), _GENDER.get(claim.gender, "U")))
    out.append(_name("PR", "2", payer.name, "", "PI", payer.id))
    where = COMPONENT.join([claim.place_of_service, "B", claim.frequency])
    out.append(segment("CLM", claim.claim_number, amount(claim.charge), "", "", where, "Y", "A", "Y", "Y"))
    if claim.frequency == REPLACEMENT and claim.original_claim:
        out.append(segment("REF", "F8", claim.original_claim))
    if claim.authorization:
        out.append(segment("REF", "G1", text(claim.authorization, 50)))
    codes = [c.replace(".", "") for c in claim.diagnoses[:12]]
    out.append(segment("HI", *[f"{'ABK' if i == 0 else 'ABF'}{COMPONENT}{c}" for i, c in enumerate(codes)]))
    out.append(_name("82", "1", claim.rendering.family, claim.rendering.given, "XX", claim.rendering_npi))
    out.append(segment("PRV", "PE", "PXC", RENDERING_TAXONOMY))
    procedure = COMPONENT.join(["HC", claim.procedure, *claim.modifiers[:4]])
    pointer = COMPONENT.join(str(i + 1) for i in range(min(len(codes), 4)))
    out += [
        segment("LX", "1"),
        segment("SV1", procedure, amount(claim.charge), "UN", str(claim.units), "", "", pointer),
        segment("DTP", "472", "D8", d8(claim.service_date)),
        segment("REF", "6R", claim.line_control),
    ]
    return out


def build(batch: Interchange) -> str:
    """The interchange as text, one segment a line (the ``~`` terminator ends each)."""
    if not batch.claims:
        raise ValueError("an 837P needs at least one claim")
    if len(batch.claims) > MAX_CLAIMS:
        raise ValueError(f"at most {MAX_CLAIMS} claims in one 837P transaction")
    at = batch.created
    st = f"{batch.transaction_control:04d}"
    provider = batch.provider
    body = [
        segment("ST", "837", st, VERSION),
        segment("BHT", "0019", "00", f"{batch.interchange_control}", d8(at.date()), at.strftime("%H%M"), "CH"),
        _name("41", "2", batch.sender.name, "", "46", batch.sender.id),
        segment("PER", "IC", "BILLING OFFICE", "TE", (provider.phone or "0000000000")[-10:]),
        _name("40", "2", batch.receiver.name, "", "46", batch.receiver.id),
        segment("HL", "1", "", "20", "1"),
    ]
    if provider.taxonomy:
        body.append(segment("PRV", "BI", "PXC", provider.taxonomy))
    body.append(_name("85", "2", provider.name, "", "XX", provider.npi))
    body += _place(provider.address)
    body.append(segment("REF", "EI", provider.tax_id))
    for index, claim in enumerate(batch.claims):
        body += _claim(claim, index + 2, 1, batch.payer, batch.claim_filing)
    body.append(segment("SE", str(len(body) + 1), st))
    group = str(batch.group_control)
    return (
        "\n".join(
            [
                isa(batch.sender.id, batch.receiver.id, at, batch.interchange_control, batch.usage),
                segment(
                    "GS",
                    "HC",
                    batch.sender.id,
                    batch.receiver.id,
                    d8(at.date()),
                    at.strftime("%H%M"),
                    group,
                    "X",
                    VERSION,
                ),
                *body,
                segment("GE", "1", group),
                segment("IEA", "1", f"{batch.interchange_control:09d}"),
            ]
        )
        + "\n"
    )
