"""structlog set-up: a console renderer on a terminal, JSON lines otherwise.

Nothing is logged per tick: connections, gaps, staleness, alerts and errors only. Every line,
the standard library's included, passes a :class:`~alerts.redact.Redactor` last before it is
rendered, so no fragment of a sink secret reaches a log.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

from alerts.redact import Redactor


class _CurrentStderr:
    """Writes to whatever ``sys.stderr`` is at the time of writing (it may be replaced)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return sys.stderr.isatty()


class _Redaction:
    """The redactor every log line passes, replaceable while logging is configured."""

    def __init__(self) -> None:
        self.redactor = Redactor()

    def processor(
        self, logger: Any, method: str, event: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        return self.redactor.processor(logger, method, event)


_redaction = _Redaction()
"""Logging is process-wide (structlog's and the standard library's configuration), and so is
the redaction of its lines."""


def redact_also(redactor: Redactor) -> None:
    """Mask ``redactor``'s secrets in every log line from now on, as well as those masked so
    far (a config reload that brings a new sink or token)."""
    _redaction.redactor = _redaction.redactor.joined(redactor)


def configure_logging(
    level: str = "info", stream: TextIO | None = None, redactor: Redactor | None = None
) -> None:
    """Configure structlog and route the standard library's logging through it.

    Args:
        level: lowest level written.
        stream: where lines go (standard error by default).
        redactor: masks secret fragments in every line (exception texts included).
    """
    out: Any = stream if stream is not None else _CurrentStderr()
    _redaction.redactor = redactor or Redactor()
    redact = _redaction.processor
    renderer: structlog.typing.Processor = (
        structlog.dev.ConsoleRenderer(colors=out.isatty())
        if out.isatty()
        else structlog.processors.JSONRenderer()
    )
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, redact, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                *shared,
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                redact,
                renderer,
            ]
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
