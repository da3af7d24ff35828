"""The database schema.

Every record table has the same spine: an integer ``pk`` (keyset paging order), the record ``id``,
its ``program_id`` (tenant), a ``version`` for optimistic concurrency, timestamps and the record's
content as a JSON document. A few content fields are copied into indexed columns so lists filter
in SQL. ``record_versions`` keeps every version of every record (nothing changes without a trace).

One module per area (records, fhir, exchange, security, audit, operations, console), all on the one
``metadata`` of ``base``; every table is re-exported here.
"""

from .audit import audit_anchors as audit_anchors
from .audit import audit_entities as audit_entities
from .audit import audit_log as audit_log
from .base import ID as ID
from .base import PK as PK
from .base import metadata as metadata
from .console import console_oidc_states as console_oidc_states
from .console import console_sessions as console_sessions
from .console import console_users as console_users
from .console import import_rows as import_rows
from .exchange import ehr_connections as ehr_connections
from .exchange import ehr_referrals as ehr_referrals
from .exchange import ehr_resources as ehr_resources
from .exchange import outbox as outbox
from .fhir import clinical_context as clinical_context
from .fhir import external_identifiers as external_identifiers
from .fhir import fhir_resources as fhir_resources
from .fhir import fhir_search as fhir_search
from .fhir import fhir_versions as fhir_versions
from .fhir import review_flags as review_flags
from .operations import bulk_exports as bulk_exports
from .operations import claim_counters as claim_counters
from .operations import claim_files as claim_files
from .operations import claim_lines as claim_lines
from .operations import subscription_events as subscription_events
from .operations import subscriptions as subscriptions
from .records import assessments as assessments
from .records import care_team_members as care_team_members
from .records import consents as consents
from .records import coverages as coverages
from .records import encounters as encounters
from .records import goals as goals
from .records import notes as notes
from .records import participants as participants
from .records import programs as programs
from .records import record_versions as record_versions
from .records import referrals as referrals
from .records import specialists as specialists
from .security import access_grants as access_grants
from .security import auth_assertions as auth_assertions
from .security import auth_clients as auth_clients
