"""The documentation a payer asks for, checked for one session: a signed note, a current
certification of an accepted state, an order, a diagnosis, the participant's age."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from service.domain.note import NoteStatus
from service.domain.referral import Referral

from .facts import SessionFacts
from .rules import PayerRules

SIGNED = frozenset({NoteStatus.FINAL, NoteStatus.AMENDED})


@dataclass
class Blocked:
    reasons: list[tuple[str, str]] = field(default_factory=list)

    def add(self, code: str, message: str) -> None:
        self.reasons.append((code, message))


def age_on(birth: date, day: date) -> int:
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


def document_checks(
    blocked: Blocked, rules: PayerRules, facts: SessionFacts, day: date, order: Referral | None, diagnoses: list[str]
) -> list[tuple[str, str]]:
    """Add the blocking reasons of the documentation rules; return the warnings."""
    docs = rules.documentation
    prefixes = tuple(docs.diagnosis_prefixes)
    warnings: list[tuple[str, str]] = []
    notes = [n for n in facts.notes if n.status is not NoteStatus.ENTERED_IN_ERROR]
    if docs.signed_note and not notes:
        blocked.add("note-missing", "the session has no note: write and sign one")
    elif docs.signed_note and not any(n.status in SIGNED for n in notes):
        blocked.add("note-unsigned", "the session's note is a draft: sign it")
    certification = facts.specialist.certification
    if docs.current_certification and not certification.is_current(day):
        blocked.add(
            "certification-not-current",
            f"the peer specialist's certification is not current on {day} "
            f"(valid {certification.issued_on} to {certification.expires_on}): renew it or record the renewal",
        )
    accepted = rules.credentials.accepted_states
    if accepted and certification.state not in accepted:
        blocked.add(
            "certification-state-not-accepted",
            f"{rules.id} takes certifications of {', '.join(accepted)}, not {certification.state}",
        )
    if docs.order and order is None:
        blocked.add(
            "no-order", f"no accepted referral (service order) for the participant on or before {day}: accept one"
        )
    if docs.diagnosis and not diagnoses:
        blocked.add(
            "missing-diagnosis",
            "no ICD-10-CM diagnosis on file: record it as the accepted referral's reason code",
        )
    elif diagnoses and docs.diagnosis_prefixes and not any(d.startswith(prefixes) for d in diagnoses):
        blocked.add(
            "diagnosis-not-covered",
            f"diagnosis {', '.join(diagnoses)} is not one {rules.id} pays for "
            f"({', '.join(docs.diagnosis_prefixes)}): check the referral's reason code",
        )
    if docs.min_age is not None and age_on(facts.participant.birth_date, day) < docs.min_age:
        blocked.add("participant-under-age", f"{rules.id} pays for participants {docs.min_age} and older")
    if docs.supervision:
        warnings.append(
            ("supervision-not-recorded", f"{rules.id} requires supervision; PeerLink does not record it: keep it filed")
        )
    return warnings
