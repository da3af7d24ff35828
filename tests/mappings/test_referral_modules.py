"""mappings.referral is split by direction: outbound (referral -> ServiceRequest + Task), inbound
(a clinic's ServiceRequest + Task -> referral), and the code tables both share (model)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from mappings import referral
from mappings.referral import inbound, model, outbound

PACKAGE = Path(referral.__file__).parent


def imported_modules(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            found.add("." * node.level + (node.module or ""))
    return found


def test_the_package_offers_each_direction():
    assert referral.to_fhir is outbound.to_fhir
    assert referral.from_fhir is inbound.from_fhir
    assert referral.status_from_task is inbound.status_from_task
    assert referral.CODES is model.CODES
    assert referral.InboundReferral is model.InboundReferral


@pytest.mark.parametrize(("module", "other"), [("outbound", ".inbound"), ("inbound", ".outbound")])
def test_one_direction_does_not_import_the_other(module, other):
    imports = imported_modules(PACKAGE / f"{module}.py")
    assert other not in imports
    assert ".model" in imports
    assert imported_modules(PACKAGE / "model.py").isdisjoint({".inbound", ".outbound"})
