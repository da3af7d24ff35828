"""The template of each import kind: its columns (name, required, example, meaning), and how a row's
cells become the body the peer API would take for the same record (``build``). The body is then
validated by the same pydantic model and created by the same use case as an API call: no second set
of rules lives here.

``build`` also says which column each part of the body came from, so a rule's complaint about
``name.family`` or ``certification.expires_on`` is reported against ``family_name`` or
``certification_expires_on``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

Where = dict[tuple[str | int, ...], str]
"""Path in the body (pydantic's ``loc``) -> the column it came from."""


@dataclass(frozen=True)
class Column:
    name: str
    required: bool
    help: str
    example: Callable[[date], str]


@dataclass(frozen=True)
class Built:
    body: dict[str, Any]
    where: Where
    note: dict[str, Any] | None = None
    """Sessions: the note to write with the session (text, signed, sud_counseling_note), if any."""


def _fixed(value: str) -> Callable[[date], str]:
    return lambda _today: value


def _day(offset_days: int) -> Callable[[date], str]:
    return lambda today: (today + timedelta(days=offset_days)).isoformat()


def _at(offset_days: int, clock: str) -> Callable[[date], str]:
    return lambda today: f"{(today + timedelta(days=offset_days)).isoformat()}T{clock}-05:00"


EXTERNAL_ID = Column(
    "external_id",
    True,
    "Your own id for the row (letters, digits, '.', '-', '_'; at most 64). Not a name or a medical record "
    "number. A row whose external_id was imported before is left as it is, so a file can be imported again.",
    _fixed("P-0001"),
)
LIST_SEPARATOR = ";"


def split(cell: str) -> list[str]:
    return [part.strip() for part in cell.split(LIST_SEPARATOR) if part.strip()]


def _put(body: dict[str, Any], where: Where, cells: dict[str, str], column: str, path: tuple[str, ...]) -> None:
    """Copy a non-blank cell to ``body`` at ``path``."""
    value = cells.get(column, "")
    if not value:
        return
    target = body
    for key in path[:-1]:
        target = target.setdefault(key, {})
    target[path[-1]] = value
    where[path] = column


def _put_list(body: dict[str, Any], where: Where, cells: dict[str, str], column: str, key: str) -> None:
    if cells.get(column, ""):
        body[key] = split(cells[column])
        where[(key,)] = column


# --- participants ----------------------------------------------------------------------------------

PARTICIPANT_COLUMNS = (
    EXTERNAL_ID,
    Column("family_name", True, "Family name (surname).", _fixed("Example")),
    Column("given_names", False, "Given names, separated by spaces.", _fixed("Jordan Lee")),
    Column("birth_date", True, "Date of birth, YYYY-MM-DD (or an Excel date).", _fixed("1990-04-12")),
    Column("gender", True, "male, female, other or unknown (FHIR administrative gender).", _fixed("unknown")),
    Column("language", False, "Preferred language as a BCP-47 tag such as en or es-MX; default en.", _fixed("en")),
    Column("phone", False, "A phone number, 7 to 15 digits.", _fixed("555-010-0199")),
    Column("email", False, "An email address.", _fixed("jordan@example.org")),
    Column("address_line", False, "Street address.", _fixed("1 Example Street")),
    Column("city", False, "City.", _fixed("Raleigh")),
    Column("state", False, "Two-letter US state code.", _fixed("NC")),
    Column("postal_code", False, "ZIP code, 12345 or 12345-6789.", _fixed("27601")),
    Column("mrn", False, "A hospital's medical record number for the participant (needs mrn_system).", _fixed("")),
    Column("mrn_system", False, "The hospital's MRN system URI, e.g. https://hospital.example.org/mrn.", _fixed("")),
)


def build_participant(cells: dict[str, str]) -> Built:
    body: dict[str, Any] = {"name": {}}
    where: Where = {("name",): "family_name"}
    _put(body, where, cells, "family_name", ("name", "family"))
    if cells.get("given_names"):
        body["name"]["given"] = cells["given_names"].split()
        where[("name", "given")] = "given_names"
    for column in ("birth_date", "gender", "language"):
        _put(body, where, cells, column, (column,))
    telecom: list[dict[str, str]] = []
    for column in ("phone", "email"):
        if cells.get(column):
            where[("telecom", len(telecom))] = column
            telecom.append({"system": column, "value": cells[column]})
    if telecom:
        body["telecom"] = telecom
    if any(cells.get(c) for c in ("address_line", "city", "state", "postal_code")):
        body["address"] = {}
        where[("address",)] = "address_line"
        if cells.get("address_line"):
            body["address"]["line"] = [cells["address_line"]]
            where[("address", "line")] = "address_line"
        for column in ("city", "state", "postal_code"):
            _put(body, where, cells, column, ("address", column))
    if cells.get("mrn") or cells.get("mrn_system"):
        body["identifiers"] = [{"type": "MR", "system": cells.get("mrn_system", ""), "value": cells.get("mrn", "")}]
        where[("identifiers",)] = "mrn"
        where[("identifiers", 0, "system")] = "mrn_system"
        where[("identifiers", 0, "value")] = "mrn"
    return Built(body, where)


# --- peer specialists ------------------------------------------------------------------------------

SPECIALIST_COLUMNS = (
    Column(EXTERNAL_ID.name, True, EXTERNAL_ID.help, _fixed("S-0001")),
    Column("family_name", True, "Family name (surname).", _fixed("Sample")),
    Column("given_names", False, "Given names, separated by spaces.", _fixed("Casey")),
    Column("certification_state", True, "State of the peer-specialist certification (two letters).", _fixed("NC")),
    Column("certification_number", True, "The certification's number.", _fixed("PSS-00001")),
    Column("certification_issued_on", True, "Day the certification was issued, YYYY-MM-DD.", _day(-365)),
    Column("certification_expires_on", True, "Day the certification expires, YYYY-MM-DD.", _day(730)),
    Column("languages", True, "Languages the specialist meets people in, BCP-47 tags separated by ';'.", _fixed("en")),
    Column(
        "lived_experience",
        False,
        "Areas of lived experience, separated by ';': mental-health, substance-use, co-occurring, veteran, "
        "youth, justice-involvement, family, lgbtq.",
        _fixed("mental-health"),
    ),
    Column("specialties", False, "Specialties, separated by ';'.", _fixed("")),
    Column("weekly_capacity", False, "Sessions a week the specialist can take, 0 to 100; default 20.", _fixed("20")),
    Column("active", False, "yes or no; default yes.", _fixed("yes")),
    Column("npi", False, "The specialist's 10-digit National Provider Identifier.", _fixed("")),
    Column("gender", False, "male, female, other or unknown.", _fixed("")),
    Column("birth_year", False, "Year of birth (for an age-range preference).", _fixed("")),
    Column("modalities", False, "Ways of meeting, separated by ';': in-person, video, phone.", _fixed("")),
    Column("county", False, "County where the specialist meets people in person.", _fixed("")),
)


def build_specialist(cells: dict[str, str]) -> Built:
    body: dict[str, Any] = {"name": {}, "certification": {}}
    where: Where = {("name",): "family_name", ("certification",): "certification_expires_on"}
    _put(body, where, cells, "family_name", ("name", "family"))
    if cells.get("given_names"):
        body["name"]["given"] = cells["given_names"].split()
        where[("name", "given")] = "given_names"
    for part in ("state", "number", "issued_on", "expires_on"):
        _put(body, where, cells, f"certification_{part}", ("certification", part))
    for column in ("languages", "lived_experience", "specialties", "modalities"):
        _put_list(body, where, cells, column, column)
    for column in ("weekly_capacity", "active", "npi", "gender", "birth_year", "county"):
        _put(body, where, cells, column, (column,))
    return Built(body, where)


# --- sessions with notes ---------------------------------------------------------------------------

SESSION_COLUMNS = (
    Column(EXTERNAL_ID.name, True, EXTERNAL_ID.help, _fixed("E-0001")),
    Column(
        "participant",
        True,
        "The participant: the external_id of an imported participant row, or a PeerLink participant id.",
        _fixed("P-0001"),
    ),
    Column(
        "specialist",
        True,
        "The peer specialist: the external_id of an imported specialist row, or a PeerLink specialist id.",
        _fixed("S-0001"),
    ),
    Column("start", True, "Start, date and time with the UTC offset: 2026-03-02T10:00:00-05:00.", _at(-7, "10:00:00")),
    Column("end", False, "End, the same way; needed when the status is finished.", _at(-7, "10:50:00")),
    Column("modality", True, "in-person, video, phone or group.", _fixed("in-person")),
    Column("status", False, "planned, in-progress, finished or cancelled; default planned.", _fixed("finished")),
    Column(
        "support_categories",
        False,
        "Support given, separated by ';': emotional, informational, instrumental, affiliational "
        "(a finished session names at least one).",
        _fixed("emotional;informational"),
    ),
    Column("location", False, "Where the session took place.", _fixed("")),
    Column("place_of_service", False, "CMS place-of-service code, two digits (11 office, 10 telehealth).", _fixed("")),
    Column("group_size", False, "A group session: how many participants attended in all.", _fixed("")),
    Column("note_text", False, "The session note. Blank: no note.", _fixed("Talked through the week's plan.")),
    Column("note_signed", False, "yes: the note is signed (final); no or blank: a draft.", _fixed("yes")),
    Column(
        "note_sud_counseling",
        False,
        "yes for a substance-use-disorder counseling note (42 CFR part 2); default no.",
        _fixed("no"),
    ),
)
SESSION_REFERENCES = {"participant": "participants", "specialist": "specialists"}
"""Reference columns of a session row -> the import kind whose external ids they may name."""


def build_session(cells: dict[str, str]) -> Built:
    """``cells`` has participant and specialist already resolved to PeerLink ids."""
    body: dict[str, Any] = {}
    where: Where = {}
    _put(body, where, cells, "participant", ("participant_id",))
    _put(body, where, cells, "specialist", ("specialist_id",))
    for column in ("start", "end", "modality", "status", "location", "place_of_service", "group_size"):
        _put(body, where, cells, column, (column,))
    _put_list(body, where, cells, "support_categories", "support_categories")
    note = None
    if cells.get("note_text"):
        note = {
            "text": cells["note_text"],
            "signed": cells.get("note_signed", "") or "no",
            "sud_counseling_note": cells.get("note_sud_counseling", "") or "no",
        }
    return Built(body, where, note)


@dataclass(frozen=True)
class ImportKind:
    name: str
    label: str
    columns: tuple[Column, ...]
    build: Callable[[dict[str, str]], Built]

    @property
    def required(self) -> list[str]:
        return [c.name for c in self.columns if c.required]

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]


IMPORT_KINDS: dict[str, ImportKind] = {
    "participants": ImportKind("participants", "participants", PARTICIPANT_COLUMNS, build_participant),
    "specialists": ImportKind("specialists", "peer specialists", SPECIALIST_COLUMNS, build_specialist),
    "sessions": ImportKind("sessions", "sessions with notes", SESSION_COLUMNS, build_session),
}
KINDS: tuple[str, ...] = tuple(IMPORT_KINDS)
