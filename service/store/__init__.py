"""Persistence: SQLAlchemy tables, the versioned record repository, migrations."""

from .database import Database
from .repository import Page, RecordRepository

__all__ = ["Database", "Page", "RecordRepository"]
