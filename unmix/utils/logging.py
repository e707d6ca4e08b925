"""Console logging for unmix (Spleeter's ``enable_logging`` / ``enable_verbose_logging``).

Only the ``"unmix"`` logger is configured; the root logger and other libraries' loggers are left alone. Both
functions are idempotent: calling them again changes the level but never adds a second handler. Applications that
configure logging themselves (e.g. ``logging.basicConfig``) do not need these functions; calling them as well prints
unmix's messages twice, once through each handler.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

LOGGER_NAME = "unmix"


class _StderrHandler(logging.StreamHandler):
    """A stream handler that always writes to the *current* ``sys.stderr`` (which tests and tqdm may replace)."""

    @property  # type: ignore[override]
    def stream(self) -> TextIO:  # noqa: D401
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:  # StreamHandler.__init__ assigns it; the property wins
        del value


class _LowercaseLevelFormatter(logging.Formatter):
    """``"warning: message"``, matching the CLI's ``"error: <path>: message"`` lines."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return f"{record.levelname.lower()}: {text}"


def _handler(logger: logging.Logger) -> logging.Handler:
    """Return unmix's console handler on ``logger``, adding it on first use."""
    for handler in logger.handlers:
        if isinstance(handler, _StderrHandler):
            return handler
    handler = _StderrHandler()
    handler.setFormatter(_LowercaseLevelFormatter("%(message)s"))
    logger.addHandler(handler)
    return handler


def enable_logging(level: int = logging.INFO) -> logging.Logger:
    """Print unmix's log messages of ``level`` and above on stderr.

    Args:
        level: minimum level shown, a :mod:`logging` constant (default ``logging.INFO``).

    Returns:
        The ``"unmix"`` logger.
    """
    logger = logging.getLogger(LOGGER_NAME)
    handler = _handler(logger)
    handler.setLevel(logging.NOTSET)
    if level <= logging.DEBUG:
        handler.setFormatter(_LowercaseLevelFormatter("%(name)s: %(message)s"))
    else:
        handler.setFormatter(_LowercaseLevelFormatter("%(message)s"))
    logger.setLevel(level)
    return logger


def enable_verbose_logging() -> logging.Logger:
    """Print every unmix log message, debug included, with the name of the module that logged it."""
    return enable_logging(logging.DEBUG)


__all__ = ["LOGGER_NAME", "enable_logging", "enable_verbose_logging"]
