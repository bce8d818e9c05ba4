"""Checks on configured websocket URLs, shared by the venue modules.

Every venue accepts only ``ws://`` or ``wss://`` URLs with a host. Venues that build the path
themselves (Binance appends ``/stream?streams=...``) also strip the documented path the user may
have copied from the venue's docs, so that it is not doubled, and reject what they cannot use,
saying what to write instead. Errors are ``ConfigError``; ``check-config`` reports them with the
key at fault.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import SplitResult, urlsplit

from monitor.errors import ConfigError

SCHEMES = ("ws", "wss")


def split_ws_url(url: str) -> SplitResult:
    """``url`` split into parts, once it is known to be a ws/wss URL with a host.

    Raises:
        ConfigError: another scheme, no host, a fragment, or an unparsable URL.
    """
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018  # raises ValueError on a bad port
    except ValueError as exc:
        raise ConfigError(f"url {url!r} is not a valid URL: {exc}") from None
    if parts.scheme.lower() not in SCHEMES:
        raise ConfigError(
            f"url {url!r} has scheme {parts.scheme or 'none'!r}; expected ws:// or wss://"
        )
    if not parts.hostname:
        raise ConfigError(f"url {url!r} has no host; expected e.g. wss://host[:port][/path]")
    if parts.fragment:
        raise ConfigError(f"url {url!r} has a #fragment, which a websocket URL cannot carry")
    return parts


def ws_url(url: str) -> str:
    """A ws/wss URL used as written (venues that build nothing on it).

    Raises:
        ConfigError: not a ws/wss URL with a host.
    """
    split_ws_url(url)
    return url.strip()


def strip_suffixes(path: str, suffixes: Sequence[str]) -> str:
    """``path`` without a trailing slash and then, repeatedly, without any of ``suffixes``.

    The suffixes are tried in order, so ``("/stream", "/ws", "/market")`` turns
    ``/market/stream/`` into ``""``.
    """
    path = path.rstrip("/")
    stripped = True
    while stripped:
        stripped = False
        for suffix in suffixes:
            if path.endswith(suffix):
                path, stripped = path[: -len(suffix)].rstrip("/"), True
    return path
