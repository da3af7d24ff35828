"""The peer-support domain: typed records, their invariants and state machines (no I/O)."""

from .assessment import AdministeredBy, Assessment, AssessmentAnswers, AssessmentFields
from .care_team import CareTeamMember, CareTeamMemberFields, CareTeamRole, ExternalClinician
from .common import RecordMeta
from .consent import Consent, ConsentFields, DataCategory
from .coverage import Coverage, CoverageFields
from .encounter import EncounterStatus, Modality, PeerEncounter, PeerEncounterFields, SupportCategory
from .goal import Goal, GoalFields, GoalStatus
from .note import AmendmentFields, Note, NoteFields, NoteStatus
from .participant import Gender, Participant, ParticipantFields
from .program import Program, ProgramFields
from .referral import Referral, ReferralAction, ReferralFields, ReferralStatus, TransitionRequest
from .specialist import Certification, LivedExperience, PeerSpecialist, PeerSpecialistFields

__all__ = [
    "AdministeredBy",
    "AmendmentFields",
    "Assessment",
    "AssessmentAnswers",
    "AssessmentFields",
    "CareTeamMember",
    "CareTeamMemberFields",
    "CareTeamRole",
    "Certification",
    "Consent",
    "ConsentFields",
    "Coverage",
    "CoverageFields",
    "DataCategory",
    "EncounterStatus",
    "ExternalClinician",
    "Gender",
    "Goal",
    "GoalFields",
    "GoalStatus",
    "LivedExperience",
    "Modality",
    "Note",
    "NoteFields",
    "NoteStatus",
    "Participant",
    "ParticipantFields",
    "PeerEncounter",
    "PeerEncounterFields",
    "PeerSpecialist",
    "PeerSpecialistFields",
    "Program",
    "ProgramFields",
    "RecordMeta",
    "Referral",
    "ReferralAction",
    "ReferralFields",
    "ReferralStatus",
    "SupportCategory",
    "TransitionRequest",
]
