"""Writing X12 segments: the delimiters PeerLink uses and the cleaning of element values."""

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal

ELEMENT = "*"
COMPONENT = ":"
REPETITION = "^"
TERMINATOR = "~"
_NOT_BASIC = re.compile(r"[^A-Z0-9 !\"&'()+,\-./;?=%@\[\]_{}\\|<>#$]")


def text(value: str, limit: int) -> str:
    """An element value: upper case, delimiters and characters outside the extended set dropped,
    spaces collapsed, cut to ``limit``."""
    cleaned = _NOT_BASIC.sub("", value.upper().replace(ELEMENT, " ").replace(COMPONENT, " "))
    return " ".join(cleaned.split())[:limit].strip()


def amount(value: Decimal) -> str:
    """A monetary amount as X12 writes it: no trailing zeros after the point, no point for whole."""
    quantized = value.quantize(Decimal("0.01"))
    shown = format(quantized, "f").rstrip("0").rstrip(".")
    return shown or "0"


def d8(day: date) -> str:
    return day.strftime("%Y%m%d")


def segment(*elements: str) -> str:
    """One segment; trailing empty elements are dropped as the standard asks."""
    items = list(elements)
    while items and items[-1] == "":
        items.pop()
    return ELEMENT.join(items) + TERMINATOR


def isa(sender: str, receiver: str, at: datetime, control: int, usage: str) -> str:
    return segment(
        "ISA", "00", " " * 10, "00", " " * 10, "ZZ", sender.ljust(15)[:15], "ZZ", receiver.ljust(15)[:15],
        at.strftime("%y%m%d"), at.strftime("%H%M"), REPETITION, "00501", f"{control:09d}", "0", usage, COMPONENT,
    )  # fmt: skip
