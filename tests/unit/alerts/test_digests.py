"""Digests name every alert within each chat API's limits; whole episodes for Alertmanager;
rate-limit headers on a success; webhook URLs that are not full URLs are config errors."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from alerts.alertmanager import AlertmanagerSink
from alerts.discord import DESCRIPTION_MAX_CHARS, DiscordSink
from alerts.file import FileSink
from alerts.notification import (
    Change,
    Digest,
    DigestEntry,
    DigestSink,
    EpisodeSink,
    Notification,
    Verdict,
    default_classify,
    exhausted_for,
)
from alerts.sinks import build_sink
from alerts.slack import SECTION_MAX_CHARS, SlackSink
from alerts.teams import TeamsSink
from alerts.telegram import TEXT_MAX_CHARS, TelegramSink
from alerts.text import DIGEST_LINE_MAX_CHARS, digest_line, digest_title, with_fired_at
from monitor.errors import ConfigError
from monitor.model import AlertState, Severity
from tests.unit.alerts.test_sinks import (
    DISCORD_URL,
    NOTE,
    RESOLVE_ISO,
    RESOLVED,
    SLACK_URL,
    TEAMS_URL,
    TELEGRAM_TOKEN,
    TS,
    TS_ISO,
    config,
    payload,
)

SECRET_BY_TYPE = {"slack": SLACK_URL, "discord": DISCORD_URL, "teams": TEAMS_URL}


def _note(n: int, severity: Severity = Severity.WARNING, long: bool = False) -> Notification:
    labels = (("portfolio", "main"), ("symbol", ("X" * 300 if long else f"SYM{n:03}")))
    event = dataclasses.replace(NOTE.event, rule=f"rule-{n:03}", severity=severity, labels=labels)
    return dataclasses.replace(NOTE, event=event, dedup_key=f"k{n}")


def _digest(count: int, long: bool = False, more: int = 0) -> Digest:
    entries = [DigestEntry(Change.FIRED, _note(0, Severity.CRITICAL, long), TS)]
    changes = [Change.FIRED, Change.FIRED_AND_RESOLVED, Change.RESOLVED, Change.STILL_FIRING]
    for n in range(1, count):
        change = changes[n % 4]
        ended = change in (Change.RESOLVED, Change.FIRED_AND_RESOLVED)
        entries.append(
            DigestEntry(change, _note(n, long=long), TS, TS + 600 if ended else None, n % 3)
        )
    return Digest(tuple(entries), (("portfolio", "main"),), more, NOTE.dashboard_url, "riskmon")


def _chat(type_: str) -> DigestSink:
    fields: dict[str, Any] = {"chat_id": "-100"} if type_ == "telegram" else {}
    secret = TELEGRAM_TOKEN if type_ == "telegram" else SECRET_BY_TYPE[type_]
    sink = build_sink(config(type_, **fields), secret)
    assert isinstance(sink, DigestSink)
    return sink


def test_digest_title_counts_changes_and_names_the_group() -> None:
    title = digest_title(_digest(8))
    assert title == (
        "CRITICAL riskmon: 2 firing, 2 resolved, 2 fired and resolved, 2 still firing "
        "[portfolio=main]"
    )


def test_digest_lines_say_what_happened_when() -> None:
    fired = DigestEntry(Change.FIRED, NOTE, TS)
    both = DigestEntry(Change.FIRED_AND_RESOLVED, RESOLVED, TS, TS + 600, superseded=2)
    assert digest_line(fired) == (
        "CRITICAL market-correlation-spike (portfolio=main, symbol=BTC<USD>&): "
        "0.9123 (threshold 0.8), fired 2025-03-01 12:00:05 UTC"
    )
    assert digest_line(both).endswith(
        "fired 2025-03-01 12:00:05 UTC, resolved 2025-03-01 12:10:05 UTC (+2 earlier episodes)"
    )
    unknown = DigestEntry(Change.FIRED_AND_RESOLVED, RESOLVED, None, TS + 600)
    assert "fired unknown" in digest_line(unknown)


@pytest.mark.parametrize("type_", ["slack", "discord", "telegram", "teams"])
def test_a_full_digest_of_long_lines_names_every_alert_within_the_api_limits(type_: str) -> None:
    sink = _chat(type_)
    digest = _digest(sink.digest_max_items, long=True, more=17)
    text = json.dumps(payload(sink.render_digest(digest)))
    for entry in digest.entries:
        assert entry.note.event.rule in text
    assert "17 more changes follow." in text
    body = payload(sink.render_digest(digest))
    if isinstance(sink, SlackSink):
        assert len(body["blocks"]) <= 50
        assert all(len(b["text"]["text"]) <= SECTION_MAX_CHARS for b in body["blocks"][1:-1])
    elif isinstance(sink, DiscordSink):
        assert len(body["embeds"][0]["description"]) <= DESCRIPTION_MAX_CHARS
    elif isinstance(sink, TelegramSink):
        assert len(body["text"]) <= TEXT_MAX_CHARS
        assert "<b>CRITICAL riskmon" in body["text"]
    else:
        assert isinstance(sink, TeamsSink)
        assert len(body["attachments"][0]["content"]["body"]) == len(digest.entries) + 2


def test_digest_lines_are_clipped() -> None:
    entry = _digest(1, long=True).entries[0]
    assert len(digest_line(entry)) == DIGEST_LINE_MAX_CHARS


def test_resolved_only_digests_are_green_on_discord_and_teams() -> None:
    resolved = DigestEntry(Change.RESOLVED, RESOLVED, TS, TS + 600)
    digest = Digest((resolved,))
    assert payload(_chat("discord").render_digest(digest))["embeds"][0]["color"] == 0x2E7D32
    card = payload(_chat("teams").render_digest(digest))["attachments"][0]["content"]
    assert card["body"][0]["color"] == "Good"


def test_alertmanager_gets_a_whole_episode_and_a_firing_as_of_its_send_time() -> None:
    sink = build_sink(config("alertmanager", url="http://am:9093"), None)
    assert isinstance(sink, AlertmanagerSink)
    assert isinstance(sink, EpisodeSink)
    (episode,) = payload(sink.render_episode(NOTE, RESOLVED))
    assert (episode["startsAt"], episode["endsAt"]) == (TS_ISO, RESOLVE_ISO)
    assert episode["annotations"]["summary"] == RESOLVED.summary
    (late,) = payload(sink.render_firing(NOTE, TS + 3600.0))
    assert (late["startsAt"], late["endsAt"]) == (TS_ISO, "2025-03-01T13:04:05.250000Z")


def test_only_chat_sinks_take_digests_and_only_alertmanager_takes_episodes() -> None:
    pager = build_sink(config("pagerduty"), "R0UT1NGKEY")
    hook = build_sink(config("webhook", url="https://hooks.example/x"), None)
    for sink in (pager, hook):
        assert not isinstance(sink, DigestSink)
        assert not isinstance(sink, EpisodeSink)
    assert not isinstance(FileSink("f", Path("x")), DigestSink)


@pytest.mark.parametrize(
    ("headers", "wait"),
    [
        ({"X-RateLimit-Remaining": "0", "X-RateLimit-Reset-After": "1.25"}, 1.25),
        ({"x-ratelimit-remaining": "0", "x-ratelimit-reset-after": "0.5"}, 0.5),
        ({"X-RateLimit-Remaining": "3", "X-RateLimit-Reset-After": "1.25"}, None),
        ({"RateLimit-Remaining": "0", "RateLimit-Reset": "7"}, 7.0),
        ({"RateLimit-Remaining": "0", "RateLimit-Reset": "soon"}, None),
        ({"X-RateLimit-Remaining": "0", "X-RateLimit-Reset-After": "-1"}, None),
        ({}, None),
    ],
)
def test_a_success_that_spends_the_budget_asks_for_a_pause(
    headers: dict[str, str], wait: float | None
) -> None:
    assert exhausted_for(headers) == wait
    outcome = default_classify(200, headers, b"")
    assert (outcome.verdict, outcome.retry_after_s) == (Verdict.DELIVERED, wait)


@pytest.mark.parametrize("type_", ["slack", "teams", "discord"])
@pytest.mark.parametrize(
    "url",
    [
        "hooks.slack.com/services/T0ABCDEF1/B0GHIJKL2/aBcDeFgHiJkLmNoPqRsTuVwX",
        "//hooks.example/x/SECRETPATH99",
        "ftp://hooks.example/x/SECRETPATH99",
        "https:///SECRETPATH99",
    ],
)
def test_a_webhook_url_without_scheme_or_host_is_a_config_error_that_hides_it(
    type_: str, url: str
) -> None:
    with pytest.raises(ConfigError) as info:
        build_sink(config(type_, secret_env="RISKMON_HOOK"), url)
    message = str(info.value)
    assert "not a full URL" in message
    assert "secret_env RISKMON_HOOK" in message
    for part in ("SECRETPATH99", "aBcDeFgHiJkLmNoPqRsTuVwX", "B0GHIJKL2"):
        assert part not in message


@pytest.mark.parametrize("type_", ["slack", "teams", "discord"])
def test_an_echoed_request_path_never_reaches_the_detail(type_: str) -> None:
    """A proxy that answers with only the request path (not the whole URL)."""
    sink = _chat(type_)
    parts = urlsplit(SECRET_BY_TYPE[type_])
    for status in (400, 404, 500):
        echo = f"no route for POST {parts.path}?{parts.query}".encode()
        detail = sink.classify(status, {}, echo).detail
        assert "SECRET" not in detail, detail
        assert "<redacted>" in detail


def test_a_resolve_rendered_alone_can_say_when_it_fired() -> None:
    shown = with_fired_at(RESOLVED, TS)
    assert shown.details[0] == ("Fired at", "2025-03-01 12:00:05 UTC")
    assert with_fired_at(RESOLVED, None) is RESOLVED
    assert shown.event.state is AlertState.RESOLVED
