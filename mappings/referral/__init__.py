"""Referral <-> ServiceRequest + Task (Gravity SDOH Clinical Care closed-loop referral).

Outbound a referral is two resources: the clinic's order as an SDOHCC-ServiceRequest and PeerLink's
progress on it as an SDOHCC-TaskForReferralManagement (Task.focus -> the ServiceRequest; the Task
carries status, BSeR business status, the reason for a rejection or cancellation and, once
completed, the delivered sessions and the outcome summary).

Choices (see also mappings/codes/referral.toml):
- ServiceRequest.requester is a contained PractitionerRole tying a contained Practitioner (the
  referring clinician: structured name, NPI when known) to a contained Organization (the clinic).
  SDOHCC allows SDOHCCPractitionerRole as requester; containing keeps the structured name and the
  clinic without a Practitioner/Organization the EHR may not have. Inbound also accepts a plain
  reference (name read from its display, NPI from its identifier) or a contained Practitioner.
- ServiceRequest.identifier: PeerLink's business identifier first, then the clinic's own identifiers
  of its order (placer order number and the like), kept as the clinic sent them so that a resend or
  a conditional create (If-None-Exist: identifier=system|value) finds the same referral.
- Task.identifier: PeerLink's identifier of its Task first, then the clinic's own identifiers of the
  Task it sent with (or for) the order, so that Task?identifier=<clinic system>|<value> finds it.
- Task.requester is the clinic as a logical reference (identifier + display), Task.owner is the
  assigned peer specialist's PractitionerRole once the referral is accepted, before that the
  program's Organization (also ServiceRequest.performer).
- Task.focus (required by SDOHCC) points at the ServiceRequest; Task.basedOn is left empty: FHIR
  keeps basedOn for a higher-level authorisation distinct from the request the Task fulfils.
- Task.output (completed referrals only): one output per finished encounter with this participant
  (program-local type, Encounter reference) and one valueString output with the outcome summary.
  No resulting-activity outputs: that slice wants a Procedure reference or a US Core procedure code.
  Beside them, per outcome instrument the participant was assessed with, the total-score Observation
  of the baseline and of the latest standing assessment (program-local types baseline-outcome and
  latest-outcome): the total carries the score, its LOINC code and the severity band, which is what a
  referring clinician reads; the panel and item Observations hang off it (derivedFrom the same
  QuestionnaireResponse) for an EHR that wants the detail.
"""

from .inbound import NOTHING, Supporting, clinic_identifiers, from_fhir, status_from_task
from .model import (
    CODES,
    ELEMENTS,
    INTENT,
    KIND,
    NPI_SYSTEM,
    TASK_KIND,
    CategoryCodes,
    ContainedIds,
    ContextLink,
    InboundReferral,
    OutcomeLink,
    OutputCodes,
    ReferralCodes,
    RequestStatus,
    TaskStatus,
)
from .outbound import to_fhir

__all__ = [
    "CODES",
    "ELEMENTS",
    "INTENT",
    "KIND",
    "NOTHING",
    "NPI_SYSTEM",
    "TASK_KIND",
    "CategoryCodes",
    "ContainedIds",
    "ContextLink",
    "InboundReferral",
    "OutcomeLink",
    "OutputCodes",
    "ReferralCodes",
    "RequestStatus",
    "Supporting",
    "TaskStatus",
    "clinic_identifiers",
    "from_fhir",
    "status_from_task",
    "to_fhir",
]
