"""The audit log: one writer for every access, refusal, token, exchange and admin action; a hash
chain that makes it tamper-evident; FHIR AuditEvent search; the accounting of disclosures; archives."""

from .writer import AuditRecord, AuditUnavailable, write, write_many

__all__ = ["AuditRecord", "AuditUnavailable", "write", "write_many"]
