"""Structured logs: JSON lines with a request id. Callers pass ids and counts, never record contents."""

from __future__ import annotations

import logging
import sys

import structlog

QUIET_LIBRARIES = ("aiosqlite", "asyncpg", "sqlalchemy", "httpx", "httpcore", "alembic.runtime.migration")


class _CurrentStderr:
    """Whatever ``sys.stderr`` is when a line is written, not when logging was configured: a stream
    swapped in for a while (a command run inside a test or a tool) may be closed by the time the
    process logs again."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure_logging(level: str = "INFO", *, json: bool = True) -> None:
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level.upper()]),
        logger_factory=structlog.PrintLoggerFactory(file=_CurrentStderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )
    # Standard-library loggers (uvicorn, sqlalchemy) go to stderr at the same level; uvicorn's access
    # log is replaced by ours, which leaves out query strings (they can carry names or identifiers).
    logging.basicConfig(level=level.upper(), stream=_CurrentStderr(), format="%(levelname)s %(name)s %(message)s")
    logging.getLogger("uvicorn.access").disabled = True
    # Drivers and clients log SQL parameters and payloads at DEBUG: they stay at WARNING whatever
    # our level is (PEERLINK_DB_ECHO is the explicit, never-with-real-data switch for SQL).
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLevelNamesMapping()[level.upper()]))
