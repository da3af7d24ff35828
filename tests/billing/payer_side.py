"""The payer's side, for the tests: a 999 acknowledgement and an 835 remittance built from an exported
837P (read back with pyx12's reader), as a clearinghouse and a payer would answer it."""

from __future__ import annotations

import io
from decimal import Decimal
from typing import Any

import pyx12.x12file

from mappings.x12.segments import amount, segment


def _segments(document: str) -> list[Any]:
    return list(pyx12.x12file.X12Reader(io.StringIO(document)))


def _isa(control: int) -> str:
    return segment(
        "ISA", "00", " " * 10, "00", " " * 10, "ZZ", "NCTRACKS".ljust(15), "ZZ", "1881000008".ljust(15),
        "261207", "1200", "^", "00501", f"{control:09d}", "0", "P", ":",
    )  # fmt: skip


def ack_999(document: str, *, reject: bool = False) -> str:
    """A 999 for the 837P: accepted, or rejected with the first SV1's units in error."""
    segments = _segments(document)
    gs = next(s for s in segments if s.get_seg_id() == "GS")
    st = next(s for s in segments if s.get_seg_id() == "ST")
    body = [
        segment("ST", "999", "0001", "005010X231A1"),
        segment("AK1", "HC", gs.get_value("GS06"), "005010X222A1"),
        segment("AK2", "837", st.get_value("ST02"), "005010X222A1"),
    ]
    if reject:
        position = next(i for i, s in enumerate(segments) if s.get_seg_id() == "SV1") - 1  # from ST = 1
        body += [segment("IK3", "SV1", str(position), "2400", "8"), segment("IK4", "4", "380", "7")]
        body += [segment("IK5", "R", "5"), segment("AK9", "R", "1", "1", "0")]
    else:
        body += [segment("IK5", "A"), segment("AK9", "A", "1", "1", "1")]
    body.append(segment("SE", str(len(body) + 1), "0001"))
    return "\n".join(
        [_isa(900), segment("GS", "FA", "NCTRACKS", "1881000008", "20261207", "1200", "900", "X", "005010X231A1"),
         *body, segment("GE", "1", "900"), segment("IEA", "1", "000000900")]
    ) + "\n"  # fmt: skip


def remit_835(document: str, *, deny_every: int = 3) -> tuple[str, dict[str, tuple[Decimal, list[str]]]]:
    """An 835 paying every claim of the 837P but denying every ``deny_every``-th (CARC 50, RARC N115) and
    paying the others less a contractual adjustment (CO-45 of a tenth). Also what each claim
    should end up as: claim number -> (paid, codes)."""
    segments = _segments(document)
    claims: list[dict[str, Any]] = []
    for seg in segments:
        sid = seg.get_seg_id()
        if sid == "CLM":
            claims.append({"number": seg.get_value("CLM01"), "charge": Decimal(seg.get_value("CLM02"))})
        elif sid == "SV1":
            claims[-1]["procedure"] = seg.get_value("SV101")
            claims[-1]["units"] = seg.get_value("SV104")
        elif sid == "DTP" and seg.get_value("DTP01") == "472":
            claims[-1]["day"] = seg.get_value("DTP03")
        elif sid == "REF" and seg.get_value("REF01") == "6R":
            claims[-1]["line"] = seg.get_value("REF02")
    expected: dict[str, tuple[Decimal, list[str]]] = {}
    body: list[str] = []
    total = Decimal(0)
    for n, claim in enumerate(claims, start=1):
        charge = claim["charge"]
        denied = n % deny_every == 0
        adjustment = charge if denied else (charge / 10).quantize(Decimal("0.01"))
        paid = charge - adjustment
        total += paid
        group, reason = ("CO", "50") if denied else ("CO", "45")
        body += [
            segment("LX", str(n)),
            segment(
                "CLP", claim["number"], "4" if denied else "1", amount(charge), amount(paid), "", "MC",
                f"ICN{n:08d}", "11", "1",
            ),
            segment("NM1", "QC", "1", "PATIENT", "", "", "", "", "MI", f"M{n}"),
            segment("SVC", claim["procedure"], amount(charge), amount(paid), "", claim["units"]),
            segment("DTM", "472", claim["day"]),
            segment("CAS", group, reason, amount(adjustment)),
            segment("REF", "6R", claim["line"]),
        ]  # fmt: skip
        codes = [f"{group}-{reason}"]
        if denied:
            body.append(segment("LQ", "HE", "N115"))
            codes.append("N115")
        expected[claim["number"]] = (paid, sorted(codes))
    header = [
        segment("ST", "835", "0001"),
        segment(
            "BPR", "I", amount(total), "C", "ACH", "CCP", "01", "999999999", "DA", "123456", "1512345678", "",
            "01", "999988880", "DA", "98765", "20261215",
        ),
        segment("TRN", "1", "EFT000123", "1512345678"),
        segment("DTM", "405", "20261215"),
        segment("N1", "PR", "NC MEDICAID"),
        segment("N3", "1 PAYER WAY"),
        segment("N4", "RALEIGH", "NC", "276990001"),
        segment("REF", "2U", "NCTRACKS"),
        segment("PER", "BL", "EDI", "TE", "8005550100"),
        segment("N1", "PE", "HARBOR PEER SUPPORT", "XX", "1881000008"),
    ]  # fmt: skip
    transaction = [*header, *body]
    transaction.append(segment("SE", str(len(transaction) + 1), "0001"))
    text = "\n".join(
        [_isa(901), segment("GS", "HP", "NCTRACKS", "1881000008", "20261215", "1200", "901", "X", "005010X221A1"),
         *transaction, segment("GE", "1", "901"), segment("IEA", "1", "000000901")]
    ) + "\n"  # fmt: skip
    return text, expected
