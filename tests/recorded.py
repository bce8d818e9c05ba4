"""Recorded websocket frames from ../shared/data/recorded (fuzzing is in tests/fuzz.py).

The recordings are read in place (never copied into the project); tests that need them skip
with a clear reason when the shared folder is absent.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

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


def first_frame(name: str, marker: str) -> tuple[float, str]:
    """The first received frame of a recording whose text contains ``marker``."""
    return next((ts, data) for ts, data in recorded_frames(name) if marker in data)
