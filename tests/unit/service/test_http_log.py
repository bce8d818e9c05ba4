"""aiohttp's server log: client errors are counted access-level lines, server faults ERRORs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import http_exceptions, web

from service.http_log import HttpErrorLog, client_error


class Lines:
    """A logger that keeps what it is given: {"event", "log_level", **fields} per line."""

    def __init__(self) -> None:
        self.lines: list[dict[str, Any]] = []

    def __getattr__(self, level: str) -> Callable[..., None]:
        def record(event: str, **fields: Any) -> None:
            self.lines.append({"event": event, "log_level": level, **fields})

        return record


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _raised(exc: BaseException) -> BaseException:
    """``exc`` with a traceback, as aiohttp hands it over."""
    try:
        raise exc
    except BaseException as caught:  # any exception is the point
        return caught


@pytest.mark.parametrize(
    "exc",
    [
        http_exceptions.BadHttpMessage("Invalid method encountered"),
        http_exceptions.BadHttpMethod("GARBAGE"),
        http_exceptions.BadStatusLine("xyz"),
        http_exceptions.LineTooLong("header", "8190"),
        http_exceptions.InvalidHeader(b"bad:"),
        http_exceptions.TransferEncodingError("bad chunk"),
        web.RequestPayloadError("bad body"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_malformed_requests_are_client_errors(exc: BaseException) -> None:
    assert client_error(exc)


@pytest.mark.parametrize(
    "exc",
    [
        None,
        RuntimeError("a bug"),
        KeyError("x"),
        http_exceptions.HttpProcessingError(code=500, message="server side"),
    ],
)
def test_everything_else_is_a_server_fault(exc: BaseException | None) -> None:
    assert not client_error(exc)


def test_a_client_error_is_one_info_line_without_traceback_and_is_counted() -> None:
    """The line names the remote, status, reason and a shortened detail; no exc_info."""
    out = Lines()
    errors = HttpErrorLog(clock=Clock(), logger=out)
    exc = _raised(http_exceptions.BadHttpMessage("Invalid method encountered:\n\n  b'X" * 40))
    errors.exception("Error handling request from %s", "10.0.0.7", exc_info=exc)
    (line,) = out.lines
    assert line["log_level"] == "info"
    assert line["event"] == "http_bad_request"
    assert (line["remote"], line["status"], line["reason"]) == ("10.0.0.7", 400, "BadHttpMessage")
    assert "exc_info" not in line
    assert "\n" not in line["detail"]
    assert len(line["detail"]) <= 160
    assert errors.bad_requests == {"BadHttpMessage": 1}


def test_a_bad_method_aiohttp_logs_at_debug_is_counted_too() -> None:
    """aiohttp reports a first request with a bad method (TLS, non-HTTP bytes) at debug."""
    out = Lines()
    errors = HttpErrorLog(clock=Clock(), logger=out)
    errors.debug(
        "Error handling request from %s",
        "10.0.0.7",
        exc_info=_raised(http_exceptions.BadHttpMethod("\x16\x03\x01")),
    )
    assert [line["event"] for line in out.lines] == ["http_bad_request"]
    assert errors.bad_requests == {"BadHttpMethod": 1}


def test_a_flood_of_client_errors_logs_a_burst_per_window_and_counts_the_rest() -> None:
    """At most ``burst`` lines per window; the rest are summed up once the next one opens."""
    clock = Clock()
    out = Lines()
    errors = HttpErrorLog(clock=clock, burst=3, window_s=60.0, logger=out)
    exc = _raised(http_exceptions.BadHttpMessage("bad"))
    for _ in range(1000):
        errors.exception("Error handling request from %s", "10.0.0.7", exc_info=exc)
    clock.now = 61.0
    errors.exception("Error handling request from %s", "10.0.0.7", exc_info=exc)
    events = [line["event"] for line in out.lines]
    assert events == ["http_bad_request"] * 3 + ["http_bad_requests_unlogged", "http_bad_request"]
    assert out.lines[3]["requests"] == 997
    assert errors.bad_requests == {"BadHttpMessage": 1001}
    family = next(f for f in errors.collect() if f.name == "riskmon_http_bad_requests")
    assert [(s.labels, s.value) for s in family.samples] == [({"reason": "BadHttpMessage"}, 1001)]


def test_a_server_fault_stays_an_error_with_its_traceback() -> None:
    """An exception escaping a handler is riskmon's fault: ERROR, with exc_info, not counted."""
    out = Lines()
    errors = HttpErrorLog(clock=Clock(), logger=out)
    errors.exception("Error handling request from %s", "10.0.0.7", exc_info=_raised(KeyError("x")))
    (line,) = out.lines
    assert line["log_level"] == "error"
    assert line["event"] == "http_server_error"
    assert isinstance(line["exc_info"], KeyError)
    assert line["message"] == "Error handling request from 10.0.0.7"
    assert errors.bad_requests == {}


def test_a_4xx_answer_is_counted_by_status_and_shares_the_log_budget() -> None:
    """Refused tokens and unknown paths are INFO lines (path, never the query) within the same
    budget as malformed requests; every one is counted."""
    clock = Clock()
    out = Lines()
    errors = HttpErrorLog(clock=clock, burst=2, window_s=60.0, logger=out)
    errors.client_error("GET", "/metrics", 401, "10.0.0.7")
    errors.exception(
        "Error handling request from %s", "10.0.0.7",
        exc_info=_raised(http_exceptions.BadHttpMessage("bad")),
    )  # fmt: skip
    errors.client_error("DELETE", "/metrics", 405, "10.0.0.7")
    assert [line["event"] for line in out.lines] == ["http_client_error", "http_bad_request"]
    assert out.lines[0] | {"log_level": "info"} == {
        "event": "http_client_error",
        "log_level": "info",
        "method": "GET",
        "path": "/metrics",
        "status": 401,
        "remote": "10.0.0.7",
    }
    assert errors.client_errors == {401: 1, 405: 1}
    families = {f.name: f for f in errors.collect()}
    answered = families["riskmon_http_client_errors"]
    assert [(s.labels, s.value) for s in answered.samples] == [
        ({"code": "401"}, 1),
        ({"code": "405"}, 1),
    ]
