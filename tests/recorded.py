"""Recorded websocket frames from ../shared/data/recorded, and fuzz strategies for parsers.

The recordings are read in place (never copied into the project); tests that need them skip
with a clear reason when the shared folder is absent. The hypothesis strategies build arbitrary
JSON values and mutations of real frames (fields deleted or retyped) for parser fuzzing.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import strategies as st

from feeds.events import FeedEvent, FeedParseError, OptionQuote, Quote, Reply, Status

RECORDED_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "recorded"


def _records(name: str) -> list[dict[str, Any]]:
    """The ``recv`` records of one recording, in file order, or skip when it is absent."""
    path = RECORDED_DIR / f"{name}.jsonl"
    if not path.exists():
        pytest.skip(f"recording {path} not present (../shared is absent)")
    with path.open(encoding="utf-8") as lines:
        records = [json.loads(line) for line in lines if line.strip()]
    return [record for record in records if record.get("t") == "recv"]


def recorded_frames(name: str) -> list[tuple[float, str]]:
    """Return the received frames of one recording, in file order.

    Args:
        name: recording name without extension, e.g. "binance" for ``binance.jsonl``.

    Returns:
        ``(ts, data)`` for every ``recv`` record: the local receive time (Unix seconds) and the
        exact message text as the exchange sent it.
    """
    return [(float(record["ts"]), str(record["data"])) for record in _records(name)]


def recorded_connections(name: str) -> dict[str, list[tuple[float, str]]]:
    """The received frames of one recording grouped by connection id (``conn``), in file order.

    Parsers are per connection, so stateful ones (sequence numbers, ticker deltas) should be
    fed one connection at a time.
    """
    connections: dict[str, list[tuple[float, str]]] = {}
    for record in _records(name):
        frames = connections.setdefault(str(record["conn"]), [])
        frames.append((float(record["ts"]), str(record["data"])))
    return connections


# Scalars that trip careless parsers: empty and non-numeric strings, huge and non-finite
# numbers, booleans where numbers are expected.
TRICKY_SCALARS: tuple[object, ...] = (
    "", "0", "-1", "nan", "inf", "1e999", "abc", 10**400, -(10**30), 0, -1, 1e308, True, False, None
)  # fmt: skip


def json_values(max_leaves: int = 20) -> st.SearchStrategy[Any]:
    """Arbitrary JSON values: nested dicts and lists of strings, numbers, booleans and null."""
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=20),
        st.sampled_from(TRICKY_SCALARS),
    )
    return st.recursive(
        scalars,
        lambda children: (
            st.lists(children, max_size=5)
            | st.dictionaries(st.text(max_size=10), children, max_size=5)
        ),
        max_leaves=max_leaves,
    )


def _slots(value: Any) -> list[tuple[Any, Any]]:
    """Every (container, key or index) inside a decoded JSON value, depth first."""
    if isinstance(value, dict):
        items = list(value.items())
    elif isinstance(value, list):
        items = list(enumerate(value))
    else:
        return []
    slots: list[tuple[Any, Any]] = []
    for key, child in items:
        slots.append((value, key))
        slots.extend(_slots(child))
    return slots


@st.composite
def mutated_frames(draw: Callable[..., Any], frames: Sequence[str]) -> str:
    """A real frame with one to three fields deleted, retyped or replaced by arbitrary JSON.

    Retyping swaps a field for a tricky scalar (empty or non-numeric string, huge or negative
    number, boolean, null); leaves (prices, times, names) are picked as often as containers.
    """
    message = json.loads(draw(st.sampled_from(frames)))
    for _ in range(draw(st.integers(1, 3))):
        slots = _slots(message)
        leaves = [(c, k) for c, k in slots if not isinstance(c[k], dict | list)]
        if not slots:
            break
        container, key = draw(st.sampled_from(leaves or slots) | st.sampled_from(slots))
        action = draw(st.sampled_from(["delete", "retype", "replace"]))
        if action == "delete":
            del container[key]
        elif action == "retype":
            container[key] = draw(st.sampled_from(TRICKY_SCALARS))
        else:
            container[key] = draw(json_values(5))
    return json.dumps(message)


def parse_or_reject(
    parse: Callable[[str | bytes, float], list[FeedEvent]], raw: str | bytes
) -> None:
    """Parse a frame: a FeedParseError is fine; any other error fails; events must be sane."""
    try:
        events = parse(raw, 1_700_000_000.0)
    except FeedParseError:
        return
    assert isinstance(events, list)
    for event in events:
        assert isinstance(event, Quote | OptionQuote | Status | Reply)
        if isinstance(event, Quote):
            assert isinstance(event.instrument, str)
            assert event.instrument
            assert math.isfinite(event.price)
            assert event.price > 0.0
            assert math.isfinite(event.ts)
