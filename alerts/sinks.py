"""Sink factory: a configured sink from its ``[[sinks]]`` entry and its secret.

:func:`read_sink_secret` reads the secret (environment variable, file, or inline value) and
:func:`build_sink` makes the sink. Errors name the sink and where the secret was looked for,
never the secret itself.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from alerts.alertmanager import AlertmanagerSink
from alerts.discord import DiscordSink
from alerts.file import FileSink
from alerts.notification import Sink
from alerts.pagerduty import PagerDutySink
from alerts.slack import SlackSink
from alerts.teams import TeamsSink
from alerts.telegram import TelegramSink
from alerts.webhook import WebhookSink
from monitor.config.schema import SinkConfig
from monitor.errors import ConfigError

BUILDERS: Mapping[str, Callable[[SinkConfig, str | None], Sink]] = {
    "slack": SlackSink.from_config,
    "discord": DiscordSink.from_config,
    "telegram": TelegramSink.from_config,
    "teams": TeamsSink.from_config,
    "pagerduty": PagerDutySink.from_config,
    "alertmanager": AlertmanagerSink.from_config,
    "webhook": WebhookSink.from_config,
}
"""The HTTP sinks by ``type``; ``file`` is the one sink that is not HTTP."""


def build_sink(config: SinkConfig, secret: str | None) -> Sink | FileSink:
    """The sink described by ``config``.

    Args:
        config: the ``[[sinks]]`` entry.
        secret: its secret as returned by :func:`read_sink_secret` (None when it has none).

    Raises:
        ConfigError: a required setting (webhook URL, token, chat_id, url, path) is missing.
    """
    if config.type == "file":
        return FileSink.from_config(config)
    return BUILDERS[config.type](config, secret)


def read_sink_secret(config: SinkConfig, environ: Mapping[str, str]) -> str | None:
    """The sink's secret: ``secret_env``, else ``secret_file``, else inline ``secret``.

    Surrounding whitespace (a file's trailing newline) is removed.

    Raises:
        ConfigError: the variable is unset or empty, or the file is missing, unreadable or empty.
    """
    if config.secret_env is not None:
        value = environ.get(config.secret_env, "").strip()
        if not value:
            raise ConfigError(
                f"sink {config.name!r}: environment variable {config.secret_env} "
                "(secret_env) is not set or empty"
            )
        return value
    if config.secret_file is not None:
        return _read_secret_file(config.name, Path(config.secret_file))
    return config.secret


def _read_secret_file(sink: str, path: Path) -> str:
    try:
        value = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError(f"sink {sink!r}: cannot read secret_file {path}: {reason}") from None
    if not value:
        raise ConfigError(f"sink {sink!r}: secret_file {path} is empty")
    return value
