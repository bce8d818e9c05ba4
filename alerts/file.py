"""The file sink: each notification appended to a JSON-lines file, flushed at once.

Not an HTTP sink: the dispatcher calls :meth:`FileSink.write` directly. Each line is the same
JSON object the webhook sink posts (:func:`alerts.webhook.notification_record`).
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import IO

import msgspec

from alerts.notification import Notification
from alerts.webhook import notification_record
from monitor.config import SinkConfig
from monitor.errors import ConfigError


class FileSink:
    """Appends notifications to ``path``; the file is opened on the first write."""

    def __init__(self, name: str, path: Path) -> None:
        self.name = name
        self.path = path
        self._file: IO[bytes] | None = None

    @classmethod
    def from_config(cls, config: SinkConfig) -> FileSink:
        """Build from ``config``: ``path`` is required."""
        if not config.path:
            raise ConfigError(f"sink {config.name!r} (file): path is required")
        return cls(config.name, Path(config.path))

    def write(self, note: Notification) -> None:
        """Append ``note`` as one line and flush."""
        if self._file is None:
            self._file = self.path.open("ab")
        self._file.write(msgspec.json.encode(notification_record(note)) + b"\n")
        self._file.flush()

    def close(self) -> None:
        """Close the file (a later write opens it again)."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> FileSink:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
