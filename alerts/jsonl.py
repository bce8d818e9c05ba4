"""The embedded file sink: one JSON object per alert event per line."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import msgspec

from monitor.model import AlertEvent


def iso_utc(ts: float) -> str:
    """ISO 8601 UTC with microseconds and a Z suffix."""
    moment = dt.datetime.fromtimestamp(ts, tz=dt.UTC)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def alert_record(event: AlertEvent) -> dict[str, Any]:
    """The JSON object written for ``event``."""
    return {
        "ts": iso_utc(event.ts),
        "rule": event.rule,
        "state": event.state.value,
        "severity": event.severity.value,
        "value": event.value,
        "threshold": event.threshold,
        "labels": dict(event.labels),
        "portfolio": event.portfolio,
    }


class JsonlAlertWriter:
    """Appends alert events to a JSON-lines file; flushes on every write."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.count = 0
        self._file: IO[bytes] = path.open("ab")
        self._encoder = msgspec.json.Encoder()

    def write(self, event: AlertEvent) -> None:
        """Append one event as a line."""
        self._file.write(self._encoder.encode(alert_record(event)) + b"\n")
        self._file.flush()
        self.count += 1

    def close(self) -> None:
        """Close the file."""
        self._file.close()

    def __enter__(self) -> JsonlAlertWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
