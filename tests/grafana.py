"""Grafana's interpolation of dashboard variables into Prometheus queries, for tests.

Grafana's Prometheus data source writes a variable that is multi-valued or has "All" as
``(v1|v2|...)``, each value regex-escaped for a PromQL string (``0.95`` -> ``0\\\\.95``), and a
single value of such a variable escaped alone; a plain variable's value only has ``\\`` and
``'`` escaped. "All" without a custom all value means every value of the variable's query.
So ``confidence="$confidence"`` becomes ``confidence="(0\\\\.95|0\\\\.99)"``, which matches
nothing, and only ``=~`` works with such variables. (Written from Grafana's documentation of
multi-value variables and its Prometheus data source's behaviour.)
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

_REGEX_SPECIAL = re.compile(r"[$^*{}\[\]'+?.()|]")
_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")

BUILTINS = {"__rate_interval": "1m", "__interval": "15s", "__range": "1h"}
"""Values of Grafana's built-in variables in these tests (scrapes every second)."""


@dataclass(frozen=True, slots=True)
class Variable:
    """A dashboard variable: whether it takes several values, and the values selected."""

    name: str
    multi: bool
    values: tuple[str, ...]


def regex_escape(value: str) -> str:
    """A value as Grafana puts it in a regex inside a PromQL string literal."""
    value = value.replace("\\", "\\\\\\\\")
    return _REGEX_SPECIAL.sub(lambda m: "\\\\" + m.group(0), value)


def plain_escape(value: str) -> str:
    """A value of a single-valued variable inside a PromQL string literal."""
    return value.replace("\\", "\\\\").replace("'", "\\\\'")


def format_value(variable: Variable) -> str:
    """What ``$name`` becomes in the query."""
    if not variable.multi:
        (value,) = variable.values
        return plain_escape(value)
    escaped = [regex_escape(v) for v in variable.values]
    return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


def interpolate(expr: str, variables: Mapping[str, Variable]) -> str:
    """``expr`` with every variable and built-in replaced as Grafana does.

    Raises:
        KeyError: a variable the dashboard does not define.
    """

    def replace(match: re.Match[str]) -> str:
        name = next(group for group in match.groups() if group)
        if name in BUILTINS:
            return BUILTINS[name]
        return format_value(variables[name])

    return _VARIABLE.sub(replace, expr)


def dashboard_variables(
    board: Mapping[str, Any], values: Mapping[str, Sequence[str]]
) -> dict[str, Variable]:
    """The dashboard's query variables with ``values`` selected (all of them: "All")."""
    found = {}
    for variable in board["templating"]["list"]:
        if variable["type"] != "query":
            continue
        multi = bool(variable.get("multi") or variable.get("includeAll"))
        name = variable["name"]
        found[name] = Variable(name, multi, tuple(values[name]))
    return found


def variable_label(variable: Mapping[str, Any]) -> tuple[str, str]:
    """(metric selector, label) of a ``label_values(metric, label)`` variable."""
    query = variable["query"]
    text = query["query"] if isinstance(query, dict) else query
    match = re.fullmatch(r"label_values\((.+),\s*([a-zA-Z_]\w*)\)", text.strip())
    assert match is not None, text
    return match.group(1), match.group(2)
