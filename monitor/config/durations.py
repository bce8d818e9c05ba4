"""Durations written the way people write them in config files: ``"250ms"``, ``"30s"``, ``"1.5h"``.

One number and one unit, no spaces inside: ``ms``, ``s``, ``m``, ``h`` or ``d``. Weeks and
compound forms such as ``"1h30m"`` are deliberately not accepted, so that every duration in a
config file reads the same way.
"""

from __future__ import annotations

import json
import math
import re

DURATION_EXPECTED = 'expected a duration like "30s", "20m", "1h", "1d"'
"""The start of every error message about a malformed duration."""

_SECONDS_PER_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"(?P<number>\d+(?:\.\d+)?)(?P<unit>ms|s|m|h|d)")
# Largest unit first, so that 5400 s is written "90m" and not "5400s".
_UNITS_DESCENDING = sorted(_SECONDS_PER_UNIT.items(), key=lambda item: -item[1])


class Duration(float):
    """Seconds; written in config files as a string such as ``"20m"``."""


class PositiveDuration(Duration):
    """A :class:`Duration` greater than zero."""


def parse_duration(text: str) -> float:
    """Parse a duration such as ``"30s"`` or ``"1.5h"`` into seconds.

    Args:
        text: a non-negative number followed by one of the units ``ms``, ``s``, ``m``, ``h``, ``d``.
            Surrounding whitespace is ignored.

    Returns:
        The duration in seconds (``0.0`` for ``"0s"``).

    Raises:
        ValueError: ``text`` is empty, negative, has no or an unknown unit, or is not finite.
    """
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"{DURATION_EXPECTED}, got {json.dumps(text)}")
    seconds = float(match["number"]) * _SECONDS_PER_UNIT[match["unit"]]
    if not math.isfinite(seconds):
        raise ValueError(f"{DURATION_EXPECTED}, got {json.dumps(text)} (too large)")
    return seconds


def format_duration(seconds: float) -> str:
    """Write seconds as the shortest duration string that :func:`parse_duration` reads back.

    Args:
        seconds: a duration in seconds; negative and non-finite values are written too, for
            error messages, although :func:`parse_duration` rejects them.

    Returns:
        For example ``"1d"`` for 86400, ``"90m"`` for 5400, ``"250ms"`` for 0.25, ``"0s"`` for 0.
    """
    if not math.isfinite(seconds):
        return f"{seconds}s"
    if seconds < 0:
        return "-" + format_duration(-seconds)
    if seconds == 0:
        return "0s"
    for unit, size in _UNITS_DESCENDING:
        count = seconds / size
        if count >= 1 and math.isclose(count, round(count), rel_tol=1e-12, abs_tol=0.0):
            return f"{round(count)}{unit}"
    return f"{seconds / 0.001:g}ms" if seconds < 1 else f"{seconds:g}s"
