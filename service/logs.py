"""Structured logs: JSON lines with a request id. Callers pass ids and counts, never record contents."""

from __future__ import annotations

import logging
import sys
from typing import Any

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


class AssembledLogger:
    """A structlog logger assembled once per configuration, for a log line written on every request.

    ``structlog.get_logger`` gives a lazy proxy that assembles a new logger at every call, because the
    configuration keeps ``cache_logger_on_first_use=False``: a later :func:`configure_logging` (a
    command run in-process, a test) must take effect on loggers already used, which structlog's own
    cache would not do. This one is assembled again whenever the configuration changed (processors,
    wrapper class, logger factory or context class replaced), so it writes what the proxy would.
    """

    def __init__(self, name: str) -> None:
        self.proxy = structlog.get_logger(name)
        self._made_from: dict[str, Any] = {}
        self._logger: Any = None
        self._info = True

    def _current(self) -> Any:
        config = structlog.get_config()
        made_from = self._made_from
        if (
            not made_from
            or config["processors"] is not made_from["processors"]
            or config["wrapper_class"] is not made_from["wrapper_class"]
            or config["logger_factory"] is not made_from["logger_factory"]
            or config["context_class"] is not made_from["context_class"]
        ):
            self._logger = self.proxy.bind()
            enabled = getattr(self._logger, "is_enabled_for", None)
            self._info = bool(enabled(logging.INFO)) if callable(enabled) else True
            self._made_from = config
        return self._logger

    def info_logger(self) -> Any:
        """The logger, or None when its level leaves INFO out (the caller skips building the line)."""
        logger = self._current()
        return logger if self._info else None
