"""The file sink: each notification appended to a JSON-lines file, flushed at once.

Not an HTTP sink: the dispatcher calls :meth:`FileSink.write` directly. Each line is the same
JSON object the webhook sink posts (:func:`alerts.webhook.notification_record`).
"""

from __future__ import annotations

from pathlib import Path

from alerts.jsonl import JsonLinesFile
from alerts.notification import Notification
from alerts.webhook import notification_record
from monitor.config.schema import SinkConfig
from monitor.errors import ConfigError


class FileSink(JsonLinesFile):
    """Appends notifications to ``path``; the file is opened on the first write."""

    def __init__(self, name: str, path: Path) -> None:
        super().__init__(path)
        self.name = name

    @classmethod
    def from_config(cls, config: SinkConfig) -> FileSink:
        """Build from ``config``: ``path`` is required."""
        if not config.path:
            raise ConfigError(f"sink {config.name!r} (file): path is required")
        return cls(config.name, Path(config.path))

    def write(self, note: Notification) -> None:
        """Append ``note`` as one line and flush."""
        self.append(notification_record(note))
