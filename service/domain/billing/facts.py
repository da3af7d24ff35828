"""What is on file about one session, as claim readiness reads it."""

from __future__ import annotations

from dataclasses import dataclass, field

from service.domain.coverage import Coverage
from service.domain.encounter import PeerEncounter
from service.domain.note import Note
from service.domain.participant import Participant
from service.domain.referral import Referral
from service.domain.specialist import PeerSpecialist


@dataclass(frozen=True)
class SessionFacts:
    """Everything on file that bears on one session's claim."""

    encounter: PeerEncounter
    participant: Participant
    specialist: PeerSpecialist
    notes: list[Note] = field(default_factory=list)
    referrals: list[Referral] = field(default_factory=list)
    coverages: list[Coverage] = field(default_factory=list)
