"""Checking an X12 file against its implementation guide with pyx12 4.x (its maps and code lists)."""

from __future__ import annotations

import io
import json
import logging
from typing import Any

import pyx12.params
import pyx12.x12n_document


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _errors(node: Any, where: str, found: list[str]) -> None:
    if isinstance(node, dict):
        for error in node.get("errors") or []:
            found.append(f"{where}: {error}")
        label = node.get("seg_id") or node.get("trn_set_control_num") or node.get("gs_control_num") or ""
        for key, value in node.items():
            if key != "errors" and isinstance(value, list | dict):
                _errors(value, f"{where}/{label}".rstrip("/") if label else where, found)
    elif isinstance(node, list):
        for item in node:
            _errors(item, where, found)


def validate(document: str) -> list[str]:
    """Every problem pyx12 finds in the interchange (envelope and control counts, loops, segments,
    element values and the code lists of the guide named in GS08); empty when it is valid."""
    collect = _Collect()
    logger = logging.getLogger("pyx12")
    logger.addHandler(collect)
    out = io.StringIO()
    try:
        valid = pyx12.x12n_document.x12n_document(
            pyx12.params.ParamsBase(), io.StringIO(document), None, None, None, out
        )
    finally:
        logger.removeHandler(collect)
    problems = list(collect.messages)
    reported = out.getvalue().strip()
    if reported:
        _errors(json.loads(reported), "interchange", problems)
    if not valid and not problems:
        problems.append("pyx12 judged the file invalid without naming an error")
    return problems
