"""One redaction for every secret: whole tokens, and any fragment of a secret URL.

A webhook URL is a secret as a whole, and so is each part of it that a receiver or a proxy may
echo back on its own: its path segments (Slack's ``T…/B…/token``, Discord's webhook token,
Telegram's ``bot<token>``) and its query values (Teams' ``sig=``), and the password of its user
information. Every fragment is also matched in its percent-encoded and JSON-escaped forms.

Fragments that identify nothing are left alone so that log lines stay readable: those shorter
than :data:`MIN_FRAGMENT_CHARS` and plain lower-case words (``services``, ``webhooks``,
``triggers``, ``manual``). A whole secret is redacted from :data:`MIN_SECRET_CHARS` characters
on (masking every "k" of every line would hide the logs, not the secret).

:class:`Redactor` is used everywhere a secret could leak: as a structlog processor on every log
line (stdlib records included), on every answer body quoted in an :class:`Outcome` detail, on
exception texts, and on ``riskmon test-alert`` output.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any

MASK = "<redacted>"
MIN_FRAGMENT_CHARS = 6
"""Shorter URL fragments are not treated as secrets (``api``, ``bot``, ``1.0``)."""

MIN_SECRET_CHARS = 4
"""Shorter whole secrets are not masked (no real token, URL or key is that short)."""

_PLAIN_WORD = re.compile(r"[a-z]+(?:[-_][a-z]+)*")
_PLAIN_WORD_MAX_CHARS = 16


def fragments(secret: str) -> frozenset[str]:
    """Every string that reveals part of ``secret``, in every form it may be written in.

    The secret itself, and for a URL its path segments, query values and password.
    """
    secret = secret.strip()
    if len(secret) < MIN_SECRET_CHARS:
        return frozenset()
    found = {secret}
    parts = urllib.parse.urlsplit(secret)
    if parts.scheme and parts.netloc:
        found.update(_url_fragments(parts))
    elif "/" in secret:  # a URL without a scheme: still a path
        found.update(_url_fragments(urllib.parse.urlsplit("//x/" + secret.lstrip("/"))))
    return frozenset(form for fragment in found for form in _forms(fragment))


def _url_fragments(parts: urllib.parse.SplitResult) -> set[str]:
    pieces = [segment for segment in parts.path.split("/") if segment]
    for pair in parts.query.split("&"):
        _, _, value = pair.partition("=")
        pieces.extend((value, urllib.parse.unquote_plus(value)))
    if parts.password:
        pieces.append(parts.password)
    return {piece for piece in pieces if _identifies(piece)}


def _identifies(piece: str) -> bool:
    if len(piece) < MIN_FRAGMENT_CHARS:
        return False
    return not (len(piece) <= _PLAIN_WORD_MAX_CHARS and _PLAIN_WORD.fullmatch(piece))


def _forms(fragment: str) -> set[str]:
    return {
        fragment,
        urllib.parse.quote(fragment, safe=""),
        urllib.parse.quote(fragment, safe="/"),
        urllib.parse.quote_plus(fragment),
        json.dumps(fragment)[1:-1],
    }


class Redactor:
    """Replaces every fragment of the given secrets with :data:`MASK`.

    Args:
        secrets: whole secrets (webhook URLs, tokens, routing keys, HMAC keys); None and empty
            values are ignored.
    """

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        self._mask(frozenset().union(*(fragments(s) for s in secrets if s)))

    def _mask(self, found: frozenset[str]) -> None:
        self._fragments = found
        ordered = sorted(found, key=lambda f: (-len(f), f))  # longest first: no partial leftovers
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def joined(self, other: Redactor) -> Redactor:
        """A redactor of the secrets of both (after a reload: the old ones stay masked)."""
        both = Redactor()
        both._mask(self._fragments | other._fragments)
        return both

    def __bool__(self) -> bool:
        return self._pattern is not None

    def __call__(self, text: str) -> str:
        """``text`` with every secret fragment masked."""
        if self._pattern is None:
            return text
        return self._pattern.sub(MASK, text)

    def scrub(self, value: Any) -> Any:
        """``value`` with every string in it (nested in dicts, lists, tuples) masked."""
        if isinstance(value, str):
            return self(value)
        if isinstance(value, Mapping):
            return {key: self.scrub(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(self.scrub(item) for item in value)
        if isinstance(value, BaseException):
            return self(f"{type(value).__name__}: {value}")
        return value

    def processor(
        self, logger: Any, method: str, event: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        """A structlog processor: every value of the event, exception texts included."""
        del logger, method
        if self._pattern is None:
            return event
        for key, value in event.items():
            event[key] = self.scrub(value)
        return event
