"""Session note <-> DocumentReference (US Core DocumentReference).

The note text travels inline as UTF-8 ``text/plain`` (base64 in ``content[0].attachment.data``). The
note type comes from the overlay's ``note_type`` (a name in codes/note.toml). An amendment
``replaces`` the note it amends. A 42 CFR Part 2 note — the caller says the participant's consent marks
their records as substance-use data, or the note is itself a SUD counseling note — carries the HL7 DS4P
``meta.security`` labels R, 42CFRPart2, ETH and NORDSCLCD, and the 42 CFR 2.32 notice as a second
``text/plain`` attachment (codes and notice text in codes/note.toml). Both live in the stored resource,
so every channel that discloses it (read, search, export, EHR push) carries them.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from service.domain import Note, NoteFields, NoteStatus, PeerEncounter

from . import codes
from .codes import Code, CodeTableError
from .context import MappingContext, MappingError, check_valid

KIND = "note"
PARTICIPANT_KIND = "participant"
ROLE_KIND = "specialist-role"
ENCOUNTER_KIND = "encounter"
CONTENT_TYPE = "text/plain; charset=utf-8"

# NoteStatus -> (DocumentReference.status, DocumentReference.docStatus)
STATUSES: dict[NoteStatus, tuple[str, str]] = {
    NoteStatus.DRAFT: ("current", "preliminary"),
    NoteStatus.FINAL: ("current", "final"),
    NoteStatus.AMENDED: ("current", "amended"),
    NoteStatus.ENTERED_IN_ERROR: ("entered-in-error", "entered-in-error"),
}


class SubstanceUseSecurity(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    confidentiality: Code
    policy: Code
    sensitivity: Code
    obligation: Code

    def codings(self) -> list[dict[str, str]]:
        return [c.coding() for c in (self.confidentiality, self.policy, self.sensitivity, self.obligation)]


class Notice(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    title: str
    language: str
    text: str
    source: str
    why: str

    def content(self) -> dict[str, Any]:
        """The notice as a DocumentReference.content entry."""
        return {
            "attachment": {
                "contentType": CONTENT_TYPE,
                "language": self.language,
                "data": base64.b64encode(self.text.encode("utf-8")).decode("ascii"),
                "title": self.title,
            },
            "format": CODES.format.coding(),
        }


class NoteCodes(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    note_types: dict[str, Code]
    category: Code
    format: Code
    substance_use_security: SubstanceUseSecurity
    part2_notice: Notice


CODES = codes.load("note", NoteCodes)
if "progress_note" not in CODES.note_types:
    raise CodeTableError("code table note.toml is wrong: note_types lacks progress_note (the default)")


def note_type(name: str) -> Code:
    try:
        return CODES.note_types[name]
    except KeyError:
        raise CodeTableError(f"note type {name!r} is not in note.toml (overlay note_type)") from None


def to_fhir(note: Note, encounter: PeerEncounter, ctx: MappingContext, substance_use: bool = False) -> dict[str, Any]:
    status, doc_status = STATUSES[note.status]
    resource: dict[str, Any] = {"resourceType": "DocumentReference", "id": ctx.id_for(KIND, note.id)}
    part2 = substance_use or note.sud_counseling_note
    if part2:
        resource["meta"] = {"security": CODES.substance_use_security.codings()}
    resource |= {
        "identifier": [ctx.identifier(KIND, note.id)],
        "status": status,
        "docStatus": doc_status,
        "type": note_type(ctx.overlay.note_type).concept(),
        "category": [CODES.category.concept()],
        "subject": ctx.reference(PARTICIPANT_KIND, encounter.participant_id),
        "date": (note.signed_at or note.created_at).isoformat(),
        "author": [ctx.reference(ROLE_KIND, note.author_id)],
    }
    if note.signed_at is not None:
        resource["authenticator"] = ctx.reference(ROLE_KIND, note.author_id)
    if note.amends_id:
        resource["relatesTo"] = [{"code": "replaces", "target": ctx.reference(KIND, note.amends_id)}]
    resource["content"] = [
        {
            "attachment": {
                "contentType": CONTENT_TYPE,
                "data": base64.b64encode(note.text.encode("utf-8")).decode("ascii"),
            },
            "format": CODES.format.coding(),
        }
    ]
    if part2:
        resource["content"].append(CODES.part2_notice.content())
    period = {"start": encounter.start.isoformat()}
    if encounter.end is not None:
        period["end"] = encounter.end.isoformat()
    resource["context"] = {"encounter": [ctx.reference(ENCOUNTER_KIND, encounter.id)], "period": period}
    return ctx.finish(resource)


# --- inbound ----------------------------------------------------------------------------------------


def _charset(content_type: str) -> str:
    for param in content_type.split(";")[1:]:
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset" and value.strip():
            return value.strip().strip('"')
    return "utf-8"


def _text(resource: dict[str, Any]) -> str:
    for index, content in enumerate(resource.get("content") or []):
        attachment = content.get("attachment") or {}
        content_type = str(attachment.get("contentType") or "text/plain")
        if not content_type.lower().startswith("text/plain") or not attachment.get("data"):
            continue
        where = f"DocumentReference.content[{index}].attachment.data"
        try:
            raw = base64.b64decode(attachment["data"], validate=True)
            return raw.decode(_charset(content_type))
        except (binascii.Error, ValueError) as exc:  # UnicodeDecodeError is a ValueError
            raise MappingError(where, f"not base64 text in the declared charset ({exc.__class__.__name__})") from None
        except LookupError:
            raise MappingError(
                f"DocumentReference.content[{index}].attachment.contentType", "unknown charset"
            ) from None
    raise MappingError("DocumentReference.content", "an inline text/plain attachment with data is required")


def _author(resource: dict[str, Any], ctx: MappingContext) -> str:
    authors = resource.get("author") or []
    if not authors:
        raise MappingError("DocumentReference.author", "the note's author is required")
    first_error: MappingError | None = None
    for index, author in enumerate(authors):
        try:
            return ctx.resolve(author, f"DocumentReference.author[{index}]")
        except MappingError as exc:
            first_error = first_error or exc
    assert first_error is not None
    raise first_error


def from_fhir(resource: dict[str, Any], ctx: MappingContext) -> NoteFields:
    """A DocumentReference (ours or a hospital's) as note fields; unknown elements are ignored."""
    check_valid(resource)
    if resource.get("resourceType") != "DocumentReference":
        raise MappingError("resourceType", "expected DocumentReference")
    encounters = (resource.get("context") or {}).get("encounter") or []
    data = {
        "encounter_id": ctx.resolve(encounters[0] if encounters else None, "DocumentReference.context.encounter[0]"),
        "author_id": _author(resource, ctx),
        "text": _text(resource),
    }
    try:
        return NoteFields.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(map(str, first["loc"]))
        raise MappingError(f"DocumentReference ({where})" if where else "DocumentReference", first["msg"]) from None
