"""Dashboard queries work with Grafana's multi-value variables: ``=~``, never ``=``."""

from __future__ import annotations

import re

import pytest

from tests.grafana import Variable, dashboard_variables, interpolate, regex_escape
from tests.unit.deploy.test_deploy import dashboard, dashboard_panels

MATCHER = re.compile(r'(\w+)\s*(=~|!~|!=|=)\s*"([^"]*)"')


def test_grafana_writes_a_multi_value_selection_as_an_escaped_alternation() -> None:
    """The form of issue #15: with ``=`` the selector matches nothing; ``=~`` matches both."""
    confidence = Variable("confidence", True, ("0.95", "0.99"))
    written = interpolate('x{confidence="$confidence"}', {"confidence": confidence})
    assert written == 'x{confidence="(0\\\\.95|0\\\\.99)"}'
    one = Variable("confidence", True, ("0.99",))
    assert interpolate("x{confidence=~'${confidence}'}", {"confidence": one}) == (
        "x{confidence=~'0\\\\.99'}"
    )
    plain = Variable("book", False, ("it's",))
    assert interpolate('x{book="$book"}', {"book": plain}) == 'x{book="it\\\\\'s"}'
    assert interpolate("rate(x[$__rate_interval])", {}) == "rate(x[1m])"


@pytest.mark.parametrize(
    ("value", "regex"),
    [("main", "main"), ("a.b", "a\\\\.b"), ("x|y", "x\\\\|y"), ("(1)", "\\\\(1\\\\)")],
)
def test_regex_escape(value: str, regex: str) -> None:
    assert regex_escape(value) == regex


def test_every_multi_value_variable_is_matched_with_a_regex() -> None:
    """Each label matcher that holds a multi-value or "All" variable uses ``=~`` (or ``!~``)."""
    board = dashboard()
    multi = {
        name
        for name, v in dashboard_variables(board, {n: ["a", "b"] for n in _names(board)}).items()
        if v.multi
    }
    assert {"portfolio", "account", "confidence"} <= multi
    wrong = []
    for panel in dashboard_panels(board):
        for target in panel.get("targets", []):
            for label, op, value in MATCHER.findall(target["expr"]):
                used = set(re.findall(r"\$\{?(\w+)", value))
                if used & multi and op not in ("=~", "!~"):
                    wrong.append(f'{panel["title"]}: {label}{op}"{value}"')
    assert wrong == []


def _names(board: dict[str, object]) -> list[str]:
    templating = board["templating"]
    assert isinstance(templating, dict)
    return [v["name"] for v in templating["list"] if v["type"] == "query"]
