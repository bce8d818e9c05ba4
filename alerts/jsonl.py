"""The embedded file sink: one JSON object per alert event per line."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

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


class JsonLinesFile:
    """Appends one JSON object per line, flushed at once; opened on the first write."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.count = 0
        self._file: IO[bytes] | None = None
        self._encoder = msgspec.json.Encoder()

    def append(self, record: Any) -> None:
        """Write ``record`` as one line and flush."""
        if self._file is None:
            self._file = self.path.open("ab")
        self._file.write(self._encoder.encode(record) + b"\n")
        self._file.flush()
        self.count += 1

    def close(self) -> None:
        """Close the file (a later write opens it again)."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class JsonlAlertWriter(JsonLinesFile):
    """The replay's ``alerts.jsonl``: one :func:`alert_record` per line."""

    def write(self, event: AlertEvent) -> None:
        """Append one event as a line."""
        self.append(alert_record(event))
