"""What the HTTP server logs: client errors as access-level events, server faults as errors.

aiohttp logs a request it cannot parse (a bad request line, method, header or chunk: the
client's fault, answered 400 before any handler runs) as "Error handling request" at ERROR with
a traceback, so any client on the network could fill the log with ERROR records. Its request
handler takes the logger to write to; :class:`HttpErrorLog` is that logger:

- a client error (aiohttp's parser errors below 500, a malformed body, a client that hung up
  in the middle of its request, which aiohttp reports as a 500 with a traceback) is counted
  by reason in ``riskmon_http_bad_requests_total`` and logged as the event
  ``http_bad_request`` at INFO, one line without traceback, at most ``burst`` lines per
  ``window_s`` (the rest are counted and summed up in one ``http_bad_requests_unlogged``
  line when the next window opens);
- a 4xx a handler answers (bad token, wrong method, unknown path, invalid JSON body) is
  counted by status in ``riskmon_http_client_errors_total`` and logged as
  ``http_client_error`` at INFO, within the same budget (:func:`service.http.build_app`'s
  middleware reports it);
- anything else aiohttp reports through ``exception`` (an exception escaping a handler: a
  fault of riskmon's) stays an ERROR with its traceback.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import structlog
from aiohttp import http_exceptions, web
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

LOG_BURST = 20
LOG_WINDOW_S = 60.0
MAX_DETAIL = 160
"""Characters of the parser's message kept (it quotes the client's bytes)."""

log = structlog.get_logger("riskmon.http")


def client_error(exc: BaseException | None) -> bool:
    """Whether ``exc`` is the client's doing: a request aiohttp cannot parse, a malformed
    body, or a client that went away in the middle of its request."""
    if isinstance(exc, web.RequestPayloadError | ConnectionError):
        return True
    return isinstance(exc, http_exceptions.HttpProcessingError) and 400 <= exc.code < 500


class HttpErrorLog(Collector):
    """The ``logger`` of aiohttp's request handler (``AppRunner(app, logger=...)``).

    Args:
        clock: monotonic clock of the log budget.
        burst: client-error lines logged per window.
        window_s: length of a window.
        logger: where the lines go (structlog's ``riskmon.http`` logger by default).
    """

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        burst: int = LOG_BURST,
        window_s: float = LOG_WINDOW_S,
        logger: Any = None,
    ) -> None:
        self._log = log if logger is None else logger
        self.bad_requests: Counter[str] = Counter()
        self.client_errors: Counter[int] = Counter()
        self._clock, self._burst, self._window_s = clock, burst, window_s
        self._window_start = -float("inf")
        self._logged = 0
        self._unlogged = 0

    # --- the logging.Logger methods aiohttp calls -----------------------------------------

    def exception(self, msg: str, *args: Any, exc_info: Any = True, **_: Any) -> None:
        """aiohttp's error report: a client error or a server fault."""
        exc = _exception(exc_info)
        if client_error(exc):
            assert exc is not None
            self._bad_request(exc, args)
            return
        self._log.error("http_server_error", message=_format(msg, args), exc_info=exc or True)

    def error(self, msg: str, *args: Any, **kw: Any) -> None:
        """Server faults aiohttp reports without an exception."""
        self.exception(msg, *args, exc_info=kw.get("exc_info"))

    def debug(self, msg: str, *args: Any, exc_info: Any = None, **_: Any) -> None:
        """aiohttp logs a first request with a bad method (TLS or non-HTTP bytes) at debug."""
        exc = _exception(exc_info) if exc_info else None
        if client_error(exc):
            assert exc is not None
            self._bad_request(exc, args)
        else:
            self._log.debug("aiohttp", message=_format(msg, args))

    def info(self, msg: str, *args: Any, **_: Any) -> None:
        """Informational lines of aiohttp's server, passed on."""
        self._log.info("aiohttp", message=_format(msg, args))

    def warning(self, msg: str, *args: Any, **_: Any) -> None:
        """Warnings of aiohttp's server, passed on."""
        self._log.warning("aiohttp", message=_format(msg, args))

    # --- client errors ----------------------------------------------------------------------

    def _bad_request(self, exc: BaseException, args: tuple[Any, ...]) -> None:
        reason = type(exc).__name__
        self.bad_requests[reason] += 1
        if self._within_budget():
            remote = str(args[0]) if args else None
            status = getattr(exc, "code", 400)
            self._log.info(
                "http_bad_request", remote=remote, status=status, reason=reason,
                detail=_detail(exc),
            )  # fmt: skip

    def client_error(self, method: str, path: str, status: int, remote: str | None) -> None:
        """A 4xx a handler answered (unauthorised, forbidden, not found, wrong method, invalid
        body): counted, and one INFO line within the same budget."""
        self.client_errors[status] += 1
        if self._within_budget():
            shown = path if len(path) <= MAX_DETAIL else path[: MAX_DETAIL - 3] + "..."
            self._log.info(
                "http_client_error", method=method, path=shown, status=status, remote=remote
            )

    def _within_budget(self) -> bool:
        """Whether one more client-error line may be logged in the current window."""
        now = self._clock()
        if now - self._window_start >= self._window_s:
            if self._unlogged:
                self._log.info("http_bad_requests_unlogged", requests=self._unlogged)
            self._window_start, self._logged, self._unlogged = now, 0, 0
        if self._logged >= self._burst:
            self._unlogged += 1
            return False
        self._logged += 1
        return True

    def collect(self) -> Iterator[Metric]:
        """``riskmon_http_bad_requests_total{reason}`` and
        ``riskmon_http_client_errors_total{code}``."""
        family = CounterMetricFamily(
            "riskmon_http_bad_requests",
            "Requests refused as malformed (the client's fault), by aiohttp's error class.",
            labels=["reason"],
        )
        for reason, count in sorted(self.bad_requests.items()):
            family.add_metric([reason], count)
        yield family
        answered = CounterMetricFamily(
            "riskmon_http_client_errors",
            "Requests a handler answered with a 4xx status (401, 403, 404, 405, 422, ...).",
            labels=["code"],
        )
        for code, count in sorted(self.client_errors.items()):
            answered.add_metric([str(code)], count)
        yield answered


def _exception(exc_info: Any) -> BaseException | None:
    if isinstance(exc_info, BaseException):
        return exc_info
    if isinstance(exc_info, tuple) and len(exc_info) == 3:
        found: BaseException | None = exc_info[1]
        return found
    return sys.exc_info()[1] if exc_info else None


def _format(msg: str, args: tuple[Any, ...]) -> str:
    try:
        return msg % args if args else msg
    except (TypeError, ValueError):
        return f"{msg} {args!r}"


def _detail(exc: BaseException) -> str:
    """The parser's message on one line, shortened (it echoes what the client sent)."""
    text = getattr(exc, "message", None) or str(exc)
    line = " ".join(str(text).split())
    return line if len(line) <= MAX_DETAIL else line[: MAX_DETAIL - 3] + "..."
