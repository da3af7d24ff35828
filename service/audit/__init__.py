"""The audit log: one writer for every access, refusal, token and exchange."""

from .writer import AuditRecord, write

__all__ = ["AuditRecord", "write"]
