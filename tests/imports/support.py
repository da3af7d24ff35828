"""Spreadsheets for the import tests, written with the same csv module and openpyxl a user's tools would."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Any

from service.imports import import_kind

TODAY = datetime.now(UTC).date()


def csv_bytes(rows: list[list[str]]) -> bytes:
    out = io.StringIO(newline="")
    csv.writer(out).writerows(rows)
    return out.getvalue().encode("utf-8")


def xlsx_bytes(rows: list[list[Any]]) -> bytes:
    from openpyxl import Workbook

    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def table(kind: str, rows: list[dict[str, Any]]) -> list[list[Any]]:
    """The template's header and these rows (cells by column name; absent columns blank)."""
    names = import_kind(kind).names
    return [names, *[[row.get(name, "") for name in names] for row in rows]]


def participant(external_id: str, family: str, **cells: Any) -> dict[str, Any]:
    return {
        "external_id": external_id,
        "family_name": family,
        "given_names": "Robin Ash",
        "birth_date": "1985-02-03",
        "gender": "female",
        "phone": "919-555-0142",
        **cells,
    }


def specialist(external_id: str, family: str, **cells: Any) -> dict[str, Any]:
    return {
        "external_id": external_id,
        "family_name": family,
        "given_names": "Sam",
        "certification_state": "NC",
        "certification_number": f"PSS-{external_id}",
        "certification_issued_on": (TODAY - timedelta(days=400)).isoformat(),
        "certification_expires_on": (TODAY + timedelta(days=400)).isoformat(),
        "languages": "en;es",
        "lived_experience": "mental-health;veteran",
        **cells,
    }


def session(external_id: str, participant: str, specialist: str, **cells: Any) -> dict[str, Any]:
    day = (TODAY - timedelta(days=3)).isoformat()
    return {
        "external_id": external_id,
        "participant": participant,
        "specialist": specialist,
        "start": f"{day}T09:00:00-05:00",
        "end": f"{day}T09:45:00-05:00",
        "modality": "video",
        "status": "finished",
        "support_categories": "emotional",
        "note_text": "Discussed the coming week.",
        "note_signed": "yes",
        **cells,
    }
