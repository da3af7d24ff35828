"""Reading the payer's answers to an 837P: the 999 implementation acknowledgement (005010X231A1) and
the 835 claim payment/advice (005010X221A1). pyx12's reader splits the segments (it learns the
delimiters from the ISA and reports envelope errors); this module keeps what matching needs."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

import pyx12.errors
import pyx12.segment
import pyx12.x12file


class AnswerError(ValueError):
    """The file is not a 999 or 835 PeerLink can read (the message says why)."""


@dataclass
class SegmentError:
    segment: str
    position: str
    loop: str | None
    code: str
    element: str | None = None
    element_code: str | None = None
    value: str | None = None


@dataclass
class TransactionAck:
    control: str
    """The acknowledged transaction set's control number (AK202 = our ST02)."""
    code: str
    """IK501: A accepted, E accepted with errors, R rejected, ..."""
    errors: list[SegmentError] = field(default_factory=list)


@dataclass
class Ack999:
    group_control: str
    """AK102: the acknowledged functional group's control number (our GS06)."""
    group_code: str
    """AK901."""
    transactions: list[TransactionAck] = field(default_factory=list)


@dataclass
class Adjustment:
    group: str
    """CAS01 claim adjustment group: CO, PR, OA, PI, CR."""
    reason: str
    """CARC."""
    amount: Decimal


@dataclass
class ServicePaid:
    procedure: str
    charge: Decimal
    paid: Decimal
    units: int | None
    line_control: str | None
    adjustments: list[Adjustment] = field(default_factory=list)
    remarks: list[str] = field(default_factory=list)
    """RARC (LQ*HE)."""


@dataclass
class ClaimPaid:
    claim_number: str
    status: str
    """CLP02: 1 processed as primary, 4 denied, 22 reversal, ..."""
    charge: Decimal
    paid: Decimal
    payer_claim: str | None
    adjustments: list[Adjustment] = field(default_factory=list)
    services: list[ServicePaid] = field(default_factory=list)


@dataclass
class Remit835:
    trace: str | None
    paid_on: str | None
    claims: list[ClaimPaid] = field(default_factory=list)


def _money(value: str | None) -> Decimal:
    try:
        return Decimal(value or "0")
    except InvalidOperation:
        raise AnswerError(f"not an amount: {value!r}") from None


def _segments(document: str) -> list[pyx12.segment.Segment]:
    if not document.lstrip().startswith("ISA"):
        raise AnswerError("not an X12 interchange: it does not start with ISA")
    try:
        reader = pyx12.x12file.X12Reader(io.StringIO(document.strip()))
        found = list(reader)
    except pyx12.errors.X12Error as exc:
        raise AnswerError(f"not a readable X12 interchange: {exc}") from None
    return found


def _cas(seg: pyx12.segment.Segment) -> list[Adjustment]:
    group = seg.get_value("CAS01") or ""
    found = []
    for n in range(2, 19, 3):
        reason = seg.get_value(f"CAS{n:02d}")
        if reason:
            found.append(Adjustment(group, reason, _money(seg.get_value(f"CAS{n + 1:02d}"))))
    return found


def kind(document: str) -> str:
    """'999' or '835' (the ST01 of the first transaction set)."""
    for seg in _segments(document):
        if seg.get_seg_id() == "ST":
            found = seg.get_value("ST01") or ""
            if found in ("999", "835"):
                return found
            raise AnswerError(f"a {found} transaction: PeerLink reads 999 acknowledgements and 835 remittances")
    raise AnswerError("no transaction set (ST) in the interchange")


def read_999(document: str) -> list[Ack999]:
    acks: list[Ack999] = []
    current: TransactionAck | None = None
    for seg in _segments(document):
        sid = seg.get_seg_id()
        if sid == "AK1":
            acks.append(Ack999(seg.get_value("AK102") or "", ""))
        elif sid == "AK2" and acks:
            current = TransactionAck(seg.get_value("AK202") or "", "")
            acks[-1].transactions.append(current)
        elif sid == "IK3" and current is not None:
            current.errors.append(
                SegmentError(
                    seg.get_value("IK301") or "", seg.get_value("IK302") or "", seg.get_value("IK303") or None,
                    seg.get_value("IK304") or "",
                )
            )  # fmt: skip
        elif sid == "IK4" and current is not None and current.errors:
            last = current.errors[-1]
            last.element = seg.get_value("IK401") or None
            last.element_code = seg.get_value("IK403") or None
            last.value = seg.get_value("IK404") or None
        elif sid == "IK5" and current is not None:
            current.code = seg.get_value("IK501") or ""
        elif sid == "AK9" and acks:
            acks[-1].group_code = seg.get_value("AK901") or ""
    if not acks:
        raise AnswerError("a 999 without AK1: it acknowledges no functional group")
    return acks


def read_835(document: str) -> Remit835:
    remit = Remit835(None, None)
    claim: ClaimPaid | None = None
    service: ServicePaid | None = None
    for seg in _segments(document):
        sid = seg.get_seg_id()
        if sid == "BPR":
            remit.paid_on = seg.get_value("BPR16") or None
        elif sid == "TRN":
            remit.trace = seg.get_value("TRN02") or None
        elif sid == "CLP":
            claim = ClaimPaid(
                seg.get_value("CLP01") or "", seg.get_value("CLP02") or "", _money(seg.get_value("CLP03")),
                _money(seg.get_value("CLP04")), seg.get_value("CLP07") or None,
            )  # fmt: skip
            remit.claims.append(claim)
            service = None
        elif sid == "SVC" and claim is not None:
            procedure = (seg.get_value("SVC01") or "").split(":")
            units = seg.get_value("SVC05")
            service = ServicePaid(
                ":".join(procedure[1:]) or "", _money(seg.get_value("SVC02")), _money(seg.get_value("SVC03")),
                int(units) if units and units.isdigit() else None, None,
            )  # fmt: skip
            claim.services.append(service)
        elif sid == "CAS" and claim is not None:
            (service.adjustments if service is not None else claim.adjustments).extend(_cas(seg))
        elif sid == "REF" and service is not None and seg.get_value("REF01") == "6R":
            service.line_control = seg.get_value("REF02") or None
        elif sid == "LQ" and service is not None and seg.get_value("LQ01") == "HE":
            service.remarks.append(seg.get_value("LQ02") or "")
    return remit
