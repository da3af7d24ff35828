"""Inbound FHIR from clinics and hospitals: a referral (ServiceRequest, its Task), the person it is
for, conditional creates, transaction Bundles and the clinic's updates of its Task.

What comes in goes through the mappings into domain records (``service.records.operations``), never
into the store as the JSON that was sent. Each use case validates what it was sent once and returns an
``Outcome`` (what it left in the store); the API layer builds the HTTP answer from the stored bytes.

- ``errors``: errors naming the element as sent (``Where``), ``IdentifierClash``
- ``outcomes``: ``Outcome``, ``written`` (the data-boundary check), ``run`` (retry on a lost race)
- ``lookups``: the records behind served resources, conditional matches, external identifier claims
- ``patients``: MRN matching, ``receive_patient``; ``referrals``: ``receive_referral``
- ``tasks``: ``receive_task``, ``update_task``, ``patch_task`` (``patch``: RFC 6902 by ``jsonpatch``)
- ``transaction``: transaction Bundles
"""

from .errors import IdentifierClash, Where, bad_request, invalid, refused
from .lookups import claim, claimed, conditional_matches, record_for, source_of
from .outcomes import Outcome, TransactionOutcome, Written, run, written
from .patients import match_or_create_participant, receive_patient
from .referrals import receive_referral
from .tasks import patch_task, receive_task, update_task
from .transaction import transaction

__all__ = [
    "IdentifierClash",
    "Outcome",
    "TransactionOutcome",
    "Where",
    "Written",
    "bad_request",
    "claim",
    "claimed",
    "conditional_matches",
    "invalid",
    "match_or_create_participant",
    "patch_task",
    "receive_patient",
    "receive_referral",
    "receive_task",
    "record_for",
    "refused",
    "run",
    "source_of",
    "transaction",
    "update_task",
    "written",
]
