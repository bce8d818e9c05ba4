"""Redaction: no fragment of a secret survives, in any form, in text, logs or exception texts."""

from __future__ import annotations

import io
import json
import logging
import urllib.parse
from collections.abc import Iterator

import pytest
import structlog

from alerts.redact import MASK, Redactor, fragments
from service.logs import configure_logging, redact_also
from tests.unit.alerts.test_sinks import DISCORD_URL, SLACK_URL, TEAMS_URL, TELEGRAM_TOKEN

SLACK = "https://hooks.slack.com/services/T0ABCDEF1/B0GHIJKL2/aBcDeFgHiJkLmNoPqRsTuVwX"
TEAMS = (
    "https://prod-07.westeurope.logic.azure.com:443/workflows/0f1e2d3c4b5a69788796a5b4c3d2e1f0"
    "/triggers/manual/paths/invoke?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun"
    "&sv=1.0&sig=Zx9-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789abc"
)
DISCORD = "https://discord.com/api/webhooks/123456789012345678/AbC-dEf_GhIjKlMnOpQrStUvWxYz"


def test_slack_path_segments_are_secret_but_plain_words_are_not() -> None:
    found = fragments(SLACK)
    assert {"T0ABCDEF1", "B0GHIJKL2", "aBcDeFgHiJkLmNoPqRsTuVwX", SLACK} <= found
    assert "services" not in found
    assert "hooks.slack.com" not in found


def test_teams_query_values_are_secret_raw_and_decoded() -> None:
    found = fragments(TEAMS)
    assert "Zx9-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789abc" in found
    assert "0f1e2d3c4b5a69788796a5b4c3d2e1f0" in found
    assert "%2Ftriggers%2Fmanual%2Frun" in found  # as written in the URL
    assert {"workflows", "triggers", "manual", "paths", "invoke", "1.0"}.isdisjoint(found)


@pytest.mark.parametrize("secret", [SLACK, TEAMS, DISCORD, SLACK_URL, DISCORD_URL, TEAMS_URL])
def test_an_echoed_path_or_query_leaves_nothing_behind(secret: str) -> None:
    """Whatever part of the URL a receiver or proxy echoes, in whatever encoding."""
    redact = Redactor([secret])
    parts = urllib.parse.urlsplit(secret)
    echoes = [
        f"404 Not Found: {parts.path}",
        f"no route for {parts.path}?{parts.query}",
        json.dumps({"error": "bad", "path": parts.path, "url": secret}),
        urllib.parse.quote(parts.path, safe=""),
        f"POST {secret} failed",
    ]
    secret_parts = [f for f in fragments(secret) if f != secret and "/" not in f]
    assert secret_parts
    for echo in echoes:
        cleaned = redact(echo)
        for part in secret_parts:
            assert part not in cleaned, (echo, part)


def test_whole_tokens_are_masked_from_four_characters() -> None:
    redact = Redactor([TELEGRAM_TOKEN, "abcd", "k", None, ""])
    text = f"https://api.telegram.org/bot{TELEGRAM_TOKEN}/sendMessage said abcd ok"
    assert redact(text) == f"https://api.telegram.org/bot{MASK}/sendMessage said {MASK} ok"


def test_a_redactor_without_secrets_changes_nothing() -> None:
    redact = Redactor()
    assert not redact
    assert redact("anything /services/T0/B0/x") == "anything /services/T0/B0/x"


def test_scrub_reaches_nested_values_and_exceptions() -> None:
    redact = Redactor([SLACK])
    value = {"a": [SLACK, ("x", SLACK)], "b": 3, "c": ValueError(f"bad url {SLACK}")}
    scrubbed = redact.scrub(value)
    assert scrubbed == {"a": [MASK, ("x", MASK)], "b": 3, "c": f"ValueError: bad url {MASK}"}


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """configure_logging changes global state: put structlog and the root logger back."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    structlog.reset_defaults()
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.usefixtures("restore_logging")
def test_every_log_line_is_redacted_structlog_and_stdlib_exceptions_included() -> None:
    out = io.StringIO()
    configure_logging("info", out, Redactor([SLACK]))
    path = urllib.parse.urlsplit(SLACK).path
    logger = structlog.wrap_logger(
        structlog.PrintLogger(out), processors=structlog.get_config()["processors"]
    )
    logger.error("alert_rejected", detail=f"HTTP 404: {path}", urls=[SLACK])
    try:
        raise ConnectionError(f"cannot reach {SLACK}")
    except ConnectionError:
        logger.exception("send_failed")
        logging.getLogger("aiohttp.client").exception("stdlib says %s", path)
    text = out.getvalue()
    assert text.count(MASK) >= 5
    for part in fragments(SLACK):
        if "/" not in part:
            assert part not in text


@pytest.mark.usefixtures("restore_logging")
def test_a_reload_adds_its_secrets_to_the_log_redaction_and_keeps_the_old_ones() -> None:
    """After redact_also (a reload with a new sink), both the old and the new secret are masked."""
    out = io.StringIO()
    configure_logging("info", out, Redactor(["old-token-value"]))
    logger = structlog.wrap_logger(
        structlog.PrintLogger(out), processors=structlog.get_config()["processors"]
    )
    logger.info("before", a="old-token-value", b=SLACK)
    redact_also(Redactor([SLACK]))
    logger.info("after", a="old-token-value", b=SLACK)
    before, after = out.getvalue().splitlines()
    assert "old-token-value" not in before
    assert SLACK in before
    assert "old-token-value" not in after
    assert SLACK not in after
    assert after.count(MASK) == 2
