"""Sinks render the exact payload each API expects and read each API's answers (pure, no I/O)."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import html
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alerts.alertmanager import AlertmanagerSink, label_name
from alerts.discord import DiscordSink, with_wait
from alerts.file import FileSink
from alerts.notification import HttpRequest, Notification, Sink, Verdict
from alerts.pagerduty import PagerDutySink
from alerts.sinks import build_sink, read_sink_secret
from alerts.slack import SlackSink
from alerts.teams import TeamsSink
from alerts.telegram import TelegramSink, default_rate
from alerts.text import escape_markup, facts, summary_lines
from alerts.webhook import SIGNATURE_HEADER, WebhookSink, notification_record
from monitor.config.schema import SinkConfig
from monitor.errors import ConfigError
from monitor.model import AlertEvent, AlertState, Severity

TS = 1_740_830_405.25  # 2025-03-01 12:00:05.25 UTC
TS_ISO = "2025-03-01T12:00:05.250000Z"
RESOLVE_TS = TS + 600.0
RESOLVE_ISO = "2025-03-01T12:10:05.250000Z"
DASHBOARD = "https://grafana.example/d/riskmon?from=now-1h&to=now"

SLACK_URL = "https://hooks.slack.com/services/T000/B000/SLACKSECRET"
DISCORD_URL = "https://discord.com/api/webhooks/123/DISCORDSECRET"
TEAMS_URL = "https://prod.westeurope.logic.azure.com/workflows/abc/triggers/manual?sig=TEAMSSECRET"
TELEGRAM_TOKEN = "123456:TELEGRAMSECRET"
ROUTING_KEY = "R0UT1NGKEYSECRET0000000000000000"
HMAC_KEY = "WEBHOOKSECRET"

EVENT = AlertEvent(
    ts=TS,
    rule="market-correlation-spike",
    state=AlertState.FIRING,
    severity=Severity.CRITICAL,
    labels=(("portfolio", "main"), ("symbol", "BTC<USD>&")),
    value=0.9123,
    threshold=0.8,
    portfolio="main",
)
NOTE = Notification(
    event=EVENT,
    dedup_key="d3dup",
    title="CRITICAL market-correlation-spike firing",
    summary="Average correlation 0.912 is above 0.8 <b>now</b>",
    details=(("Top pair", "BTC/ETH 0.97"), ("Largest VaR", "BTC 12,345 USD")),
    dashboard_url=DASHBOARD,
    source="riskmon@host1",
)
RESOLVED = dataclasses.replace(
    NOTE,
    event=dataclasses.replace(
        EVENT, ts=RESOLVE_TS, state=AlertState.RESOLVED, value=0.7, threshold=0.75
    ),
    title="CRITICAL market-correlation-spike resolved",
)
BARE = dataclasses.replace(NOTE, dashboard_url=None, details=())


def payload(request: HttpRequest) -> Any:
    """The request's JSON body."""
    assert request.method == "POST"
    assert request.headers["Content-Type"] == "application/json"
    return json.loads(request.body)


def config(type_: str, **fields: Any) -> SinkConfig:
    """A ``[[sinks]]`` entry named after its type."""
    return SinkConfig(name=f"my-{type_}", type=type_, **fields)  # type: ignore[arg-type]


def with_severity(note: Notification, severity: Severity) -> Notification:
    return dataclasses.replace(note, event=dataclasses.replace(note.event, severity=severity))


# --- shared text --------------------------------------------------------------------------------


def test_facts_are_figures_time_labels_then_details() -> None:
    """Every sink shows the same facts in the same order; portfolio is not repeated."""
    assert facts(NOTE) == (
        ("Value", "0.9123"),
        ("Threshold", "0.8"),
        ("Time", "2025-03-01 12:00:05 UTC"),
        ("portfolio", "main"),
        ("symbol", "BTC<USD>&"),
        ("Top pair", "BTC/ETH 0.97"),
        ("Largest VaR", "BTC 12,345 USD"),
    )


def test_summary_lines_are_title_summary_facts_dashboard() -> None:
    lines = summary_lines(NOTE)
    assert lines[:3] == (NOTE.title, NOTE.summary, "Value: 0.9123")
    assert lines[-1] == f"Dashboard: {DASHBOARD}"
    assert summary_lines(BARE)[-1] == "symbol: BTC<USD>&"


@given(st.text(alphabet="ab&<>", max_size=40), st.integers(min_value=2, max_value=30))
def test_escape_markup_clips_without_cutting_an_entity(text: str, max_chars: int) -> None:
    """The escaped text fits and unescapes to a prefix of the original."""
    escaped = escape_markup(text, max_chars)
    assert len(escaped) <= max_chars
    kept = escaped.removesuffix("…")
    assert text.startswith(html.unescape(kept))
    assert "&" not in kept.replace("&amp;", "").replace("&lt;", "").replace("&gt;", "")


# --- Slack --------------------------------------------------------------------------------------


def slack() -> SlackSink:
    sink = build_sink(config("slack"), SLACK_URL)
    assert isinstance(sink, SlackSink)
    return sink


def test_slack_payload_has_fallback_text_and_blocks() -> None:
    request = slack().render(NOTE)
    assert request.url == SLACK_URL
    body = payload(request)
    assert set(body) == {"text", "blocks"}
    assert body["text"].startswith(
        NOTE.title + "\nAverage correlation 0.912 is above 0.8 &lt;b&gt;"
    )
    header, summary, fields, context = body["blocks"]
    assert header == {"type": "header", "text": {"type": "plain_text", "text": NOTE.title}}
    assert summary["text"] == {
        "type": "mrkdwn",
        "text": "Average correlation 0.912 is above 0.8 &lt;b&gt;now&lt;/b&gt;",
    }
    assert fields["type"] == "section"
    assert fields["fields"][0] == {"type": "mrkdwn", "text": "*Value*\n0.9123"}
    assert {"type": "mrkdwn", "text": "*symbol*\nBTC&lt;USD&gt;&amp;"} in fields["fields"]
    assert context["type"] == "context"
    link = "<https://grafana.example/d/riskmon?from=now-1h&amp;to=now|Dashboard>"
    assert context["elements"][0]["text"] == (f"riskmon@host1 · 2025-03-01 12:00:05 UTC · {link}")


def test_slack_config_url_overrides_the_secret() -> None:
    sink = build_sink(config("slack", url="http://127.0.0.1:9/slack"), SLACK_URL)
    assert isinstance(sink, SlackSink)
    assert sink.render(NOTE).url == "http://127.0.0.1:9/slack"


def test_slack_classify() -> None:
    sink = slack()
    assert sink.classify(200, {}, b"ok").verdict is Verdict.DELIVERED
    limited = sink.classify(429, {"Retry-After": "2"}, b"")
    assert (limited.verdict, limited.retry_after_s) == (Verdict.RETRY, 2.0)
    assert sink.classify(500, {}, b"rollup_error").verdict is Verdict.RETRY
    rejected = sink.classify(400, {}, b"invalid_payload")
    assert (rejected.verdict, rejected.detail) == (Verdict.REJECTED, "HTTP 400: invalid_payload")


# --- Discord ------------------------------------------------------------------------------------


def discord() -> DiscordSink:
    sink = build_sink(config("discord"), DISCORD_URL)
    assert isinstance(sink, DiscordSink)
    return sink


def test_discord_payload_is_content_and_one_embed() -> None:
    request = discord().render(NOTE)
    assert request.url == DISCORD_URL + "?wait=true"
    body = payload(request)
    assert body["content"] == NOTE.title
    assert body["allowed_mentions"] == {"parse": []}
    (embed,) = body["embeds"]
    assert embed["title"] == NOTE.title
    assert embed["description"] == NOTE.summary
    assert embed["color"] == 0xD32F2F
    assert embed["url"] == DASHBOARD
    assert embed["timestamp"] == TS_ISO
    assert embed["footer"] == {"text": "riskmon@host1"}
    assert embed["fields"][0] == {"name": "Value", "value": "0.9123", "inline": True}
    assert [f["name"] for f in embed["fields"]] == [k for k, _ in facts(NOTE)]
    assert "url" not in discord().render(BARE).body.decode()


@pytest.mark.parametrize(
    ("note", "colour"),
    [
        (with_severity(NOTE, Severity.WARNING), 0xF9A825),
        (with_severity(NOTE, Severity.INFO), 0x1976D2),
        (RESOLVED, 0x2E7D32),
    ],
)
def test_discord_colour_by_severity_and_green_when_resolved(
    note: Notification, colour: int
) -> None:
    assert payload(discord().render(note))["embeds"][0]["color"] == colour


def test_discord_wait_keeps_the_rest_of_the_query() -> None:
    assert with_wait("https://d/api/webhooks/1/t?thread_id=9&wait=false") == (
        "https://d/api/webhooks/1/t?thread_id=9&wait=true"
    )


def test_discord_classify_reads_retry_after_from_body_then_headers() -> None:
    sink = discord()
    assert sink.classify(204, {}, b"").verdict is Verdict.DELIVERED
    body = b'{"message": "You are being rate limited.", "retry_after": 1.234, "global": false}'
    limited = sink.classify(429, {"X-RateLimit-Reset-After": "0.5"}, body)
    assert (limited.verdict, limited.retry_after_s) == (Verdict.RETRY, 1.234)
    by_header = sink.classify(429, {"x-ratelimit-reset-after": "0.75"}, b"")
    assert by_header.retry_after_s == 0.75
    assert sink.classify(429, {"Retry-After": "3"}, b"").retry_after_s == 3.0
    assert sink.classify(502, {}, b"").verdict is Verdict.RETRY
    rejected = sink.classify(400, {"X-RateLimit-Reset-After": "1"}, b'{"code": 50006}')
    assert (rejected.verdict, rejected.retry_after_s) == (Verdict.REJECTED, None)


def test_discord_delivered_with_empty_bucket_asks_to_wait_for_its_reset() -> None:
    headers = {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset-After": "1.5"}
    outcome = discord().classify(200, headers, b"{}")
    assert (outcome.verdict, outcome.retry_after_s) == (Verdict.DELIVERED, 1.5)
    assert discord().classify(200, {"X-RateLimit-Remaining": "3"}, b"{}").retry_after_s is None


# --- Telegram -----------------------------------------------------------------------------------


def telegram(**fields: Any) -> TelegramSink:
    sink = build_sink(config("telegram", chat_id="4242", **fields), TELEGRAM_TOKEN)
    assert isinstance(sink, TelegramSink)
    return sink


def test_telegram_payload_is_escaped_html() -> None:
    request = telegram().render(NOTE)
    assert request.url == f"https://api.telegram.org/bot{TELEGRAM_TOKEN}/sendMessage"
    body = payload(request)
    assert body["chat_id"] == "4242"
    assert body["parse_mode"] == "HTML"
    assert body["disable_web_page_preview"] is True
    assert body["link_preview_options"] == {"is_disabled": True}
    lines = body["text"].split("\n")
    assert lines[0] == f"<b>{NOTE.title}</b>"
    assert lines[1] == "Average correlation 0.912 is above 0.8 &lt;b&gt;now&lt;/b&gt;"
    assert "<b>symbol</b>: BTC&lt;USD&gt;&amp;" in lines
    assert lines[-1] == (
        '<a href="https://grafana.example/d/riskmon?from=now-1h&amp;to=now">Dashboard</a>'
    )


def test_telegram_url_override_and_group_rate() -> None:
    sink = telegram(url="http://127.0.0.1:9/")
    assert sink.render(NOTE).url == f"http://127.0.0.1:9/bot{TELEGRAM_TOKEN}/sendMessage"
    assert sink.rate_per_s == 1.0
    assert default_rate("-100123") == pytest.approx(1 / 3)
    assert default_rate("@alerts") == pytest.approx(1 / 3)


def test_telegram_long_message_drops_trailing_facts_to_fit() -> None:
    details = tuple((f"pair {i}", "x" * 200) for i in range(100))
    text = payload(telegram().render(dataclasses.replace(NOTE, details=details)))["text"]
    assert len(text) <= 4096
    assert text.endswith("Dashboard</a>")
    assert text.count("<b>") == text.count("</b>")


def test_telegram_classify_reads_parameters_retry_after() -> None:
    sink = telegram()
    ok = b'{"ok": true, "result": {"message_id": 1}}'
    assert sink.classify(200, {}, ok).verdict is Verdict.DELIVERED
    limited = sink.classify(
        429,
        {},
        b'{"ok": false, "error_code": 429, "description": "Too Many Requests: retry after 7",'
        b' "parameters": {"retry_after": 7}}',
    )
    assert (limited.verdict, limited.retry_after_s) == (Verdict.RETRY, 7.0)
    assert limited.detail == "HTTP 429: Too Many Requests: retry after 7"
    missing = sink.classify(400, {}, b'{"ok": false, "description": "Bad Request: chat not found"}')
    assert (missing.verdict, missing.detail) == (
        Verdict.REJECTED,
        "HTTP 400: Bad Request: chat not found",
    )
    assert sink.classify(200, {}, b'{"ok": false}').verdict is Verdict.REJECTED
    assert sink.classify(502, {}, b"<html>Bad Gateway</html>").verdict is Verdict.RETRY


# --- Teams --------------------------------------------------------------------------------------


def teams() -> TeamsSink:
    sink = build_sink(config("teams"), TEAMS_URL)
    assert isinstance(sink, TeamsSink)
    return sink


def test_teams_payload_is_an_adaptive_card_attachment() -> None:
    request = teams().render(NOTE)
    assert request.url == TEAMS_URL
    body = payload(request)
    assert body["type"] == "message"
    (attachment,) = body["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert (card["type"], card["version"]) == ("AdaptiveCard", "1.4")
    title, summary, fact_set = card["body"]
    assert (title["type"], title["text"], title["color"]) == ("TextBlock", NOTE.title, "Attention")
    assert (summary["type"], summary["text"]) == ("TextBlock", NOTE.summary)
    assert fact_set["type"] == "FactSet"
    assert fact_set["facts"] == [{"title": k, "value": v} for k, v in facts(NOTE)]
    assert card["actions"] == [{"type": "Action.OpenUrl", "title": "Dashboard", "url": DASHBOARD}]
    assert "actions" not in payload(teams().render(BARE))["attachments"][0]["content"]
    resolved_title = payload(teams().render(RESOLVED))["attachments"][0]["content"]["body"][0]
    assert resolved_title["color"] == "Good"


def test_teams_classify() -> None:
    sink = teams()
    assert sink.classify(202, {}, b"").verdict is Verdict.DELIVERED
    assert sink.classify(429, {"Retry-After": "10"}, b"").retry_after_s == 10.0
    assert sink.classify(503, {}, b"").verdict is Verdict.RETRY
    assert sink.classify(400, {}, b"").verdict is Verdict.REJECTED


# --- PagerDuty ----------------------------------------------------------------------------------


def pagerduty() -> PagerDutySink:
    sink = build_sink(config("pagerduty"), ROUTING_KEY)
    assert isinstance(sink, PagerDutySink)
    return sink


def test_pagerduty_trigger_event() -> None:
    request = pagerduty().render(NOTE)
    assert request.url == "https://events.pagerduty.com/v2/enqueue"
    body = payload(request)
    assert body["routing_key"] == ROUTING_KEY
    assert body["event_action"] == "trigger"
    assert body["dedup_key"] == "d3dup"
    assert body["links"] == [{"href": DASHBOARD, "text": "Dashboard"}]
    event = body["payload"]
    assert event["summary"] == f"{NOTE.title}: {NOTE.summary}"
    assert event["source"] == "riskmon@host1"
    assert event["severity"] == "critical"
    assert event["timestamp"] == TS_ISO
    assert event["custom_details"] == {
        "Top pair": "BTC/ETH 0.97",
        "Largest VaR": "BTC 12,345 USD",
        "rule": "market-correlation-spike",
        "value": 0.9123,
        "threshold": 0.8,
        "labels": {"portfolio": "main", "symbol": "BTC<USD>&"},
        "portfolio": "main",
    }


@pytest.mark.parametrize("severity", list(Severity))
def test_pagerduty_severity_mapping(severity: Severity) -> None:
    body = payload(pagerduty().render(with_severity(NOTE, severity)))
    assert body["payload"]["severity"] == severity.value


def test_pagerduty_summary_is_cut_to_1024_characters() -> None:
    long = dataclasses.replace(NOTE, summary="x" * 5000)
    assert len(payload(pagerduty().render(long))["payload"]["summary"]) == 1024


def test_pagerduty_resolve_carries_only_key_action_and_dedup_key() -> None:
    assert payload(pagerduty().render(RESOLVED)) == {
        "routing_key": ROUTING_KEY,
        "event_action": "resolve",
        "dedup_key": "d3dup",
    }


def test_pagerduty_classify() -> None:
    sink = pagerduty()
    accepted = b'{"status": "success", "message": "Event processed", "dedup_key": "d3dup"}'
    assert sink.classify(202, {}, accepted).verdict is Verdict.DELIVERED
    assert sink.classify(429, {}, b"").verdict is Verdict.RETRY
    assert sink.classify(500, {}, b"").verdict is Verdict.RETRY
    invalid = b'{"status": "invalid event", "message": "Event object is invalid"}'
    rejected = sink.classify(400, {}, invalid)
    assert rejected.verdict is Verdict.REJECTED
    assert "Event object is invalid" in rejected.detail


# --- Alertmanager -------------------------------------------------------------------------------


def alertmanager() -> AlertmanagerSink:
    sink = build_sink(config("alertmanager", url="http://127.0.0.1:9093/"), None)
    assert isinstance(sink, AlertmanagerSink)
    return sink


def only_alert(request: HttpRequest) -> dict[str, Any]:
    (alert,) = payload(request)
    assert isinstance(alert, dict)
    return alert


def test_alertmanager_firing_alert() -> None:
    request = alertmanager().render(NOTE)
    assert request.url == "http://127.0.0.1:9093/api/v2/alerts"
    alert = only_alert(request)
    assert alert["labels"] == {
        "alertname": "market-correlation-spike",
        "severity": "critical",
        "portfolio": "main",
        "symbol": "BTC<USD>&",
    }
    assert alert["annotations"] == {
        "summary": NOTE.summary,
        "description": "\n".join(summary_lines(NOTE)[1:]),
        "dashboard": DASHBOARD,
    }
    assert alert["startsAt"] == TS_ISO
    assert alert["endsAt"] == "2025-03-01T12:04:05.250000Z"  # 4 x the 1 min resend_interval
    assert alert["generatorURL"] == DASHBOARD


def test_alertmanager_resend_and_resolve_keep_the_identity() -> None:
    sink = alertmanager()
    firing = only_alert(sink.render(NOTE))
    resent = only_alert(sink.resend_request(NOTE, now=TS + 3600.0))
    resolved = only_alert(sink.render(RESOLVED))
    assert firing["labels"] == resent["labels"] == resolved["labels"]
    assert resent["startsAt"] == TS_ISO
    assert resent["endsAt"] == "2025-03-01T13:04:05.250000Z"
    assert resolved["startsAt"] == resolved["endsAt"] == RESOLVE_ISO
    assert only_alert(sink.resend_request(RESOLVED, now=TS + 3600.0)) == resolved


def test_alertmanager_hold_follows_resend_interval() -> None:
    sink = build_sink(config("alertmanager", url="http://am:9093", resend_interval=30.0), None)
    assert isinstance(sink, AlertmanagerSink)
    assert only_alert(sink.render(NOTE))["endsAt"] == "2025-03-01T12:02:05.250000Z"


def test_alertmanager_without_dashboard_and_with_odd_label_names() -> None:
    odd = dataclasses.replace(
        BARE, event=dataclasses.replace(EVENT, labels=(("pair-name", "A/B"), ("9x", "y")))
    )
    alert = only_alert(alertmanager().render(odd))
    assert alert["generatorURL"] == ""
    assert "dashboard" not in alert["annotations"]
    assert alert["labels"]["pair_name"] == "A/B"
    assert alert["labels"]["_9x"] == "y"
    assert label_name("") == "_"


def test_alertmanager_classify() -> None:
    sink = alertmanager()
    assert sink.classify(200, {}, b"").verdict is Verdict.DELIVERED
    rejected = sink.classify(400, {}, b'"start time must be before end time"')
    assert (rejected.verdict, rejected.detail) == (
        Verdict.REJECTED,
        'HTTP 400: "start time must be before end time"',
    )
    assert sink.classify(503, {}, b"").verdict is Verdict.RETRY


# --- webhook and file ---------------------------------------------------------------------------


def test_webhook_body_is_the_notification_record() -> None:
    sink = build_sink(config("webhook", url="https://hooks.example/riskmon"), None)
    assert isinstance(sink, WebhookSink)
    request = sink.render(NOTE)
    assert request.url == "https://hooks.example/riskmon"
    assert SIGNATURE_HEADER not in request.headers
    assert payload(request) == {
        "ts": TS_ISO,
        "rule": "market-correlation-spike",
        "state": "firing",
        "severity": "critical",
        "value": 0.9123,
        "threshold": 0.8,
        "labels": {"portfolio": "main", "symbol": "BTC<USD>&"},
        "portfolio": "main",
        "dedup_key": "d3dup",
        "title": NOTE.title,
        "summary": NOTE.summary,
        "details": [
            {"label": "Top pair", "text": "BTC/ETH 0.97"},
            {"label": "Largest VaR", "text": "BTC 12,345 USD"},
        ],
        "dashboard_url": DASHBOARD,
    }


def test_webhook_signature_verifies_against_the_exact_body() -> None:
    sink = build_sink(config("webhook", url="https://hooks.example/riskmon"), HMAC_KEY)
    assert isinstance(sink, WebhookSink)
    request = sink.render(NOTE)
    expected = hmac.new(HMAC_KEY.encode(), request.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(request.headers[SIGNATURE_HEADER], f"sha256={expected}")


def test_file_sink_appends_one_flushed_line_per_notification(tmp_path: Path) -> None:
    path = tmp_path / "alerts.jsonl"
    sink = build_sink(config("file", path=str(path)), None)
    assert isinstance(sink, FileSink)
    with sink:
        sink.write(NOTE)
        sink.write(RESOLVED)
        lines = path.read_text().splitlines()  # read before close: each write is flushed
    assert [json.loads(line) for line in lines] == [
        notification_record(NOTE),
        notification_record(RESOLVED),
    ]


# --- every sink ---------------------------------------------------------------------------------

SECRET_SINKS: list[tuple[SinkConfig, str]] = [
    (config("slack"), SLACK_URL),
    (config("discord"), DISCORD_URL),
    (config("teams"), TEAMS_URL),
    (config("telegram", chat_id="1"), TELEGRAM_TOKEN),
    (config("pagerduty"), ROUTING_KEY),
    (config("webhook", url="https://hooks.example/"), HMAC_KEY),
]


@pytest.mark.parametrize(("entry", "secret"), SECRET_SINKS, ids=lambda v: getattr(v, "type", ""))
@pytest.mark.parametrize("status", [200, 400, 429, 500])
def test_secret_never_in_detail_or_repr(entry: SinkConfig, secret: str, status: int) -> None:
    """Even an answer that echoes the secret leaves it out of the detail; repr omits it."""
    sink = build_sink(entry, secret)
    assert not isinstance(sink, FileSink)
    echo = json.dumps({"ok": False, "description": f"bad {secret}", "echo": secret}).encode()
    outcome = sink.classify(status, {}, echo)
    assert secret not in outcome.detail
    assert secret not in repr(sink)


@pytest.mark.parametrize(
    ("type_", "rate"),
    [
        ("slack", 1.0),
        ("discord", 0.5),
        ("teams", 1.0),
        ("telegram", 1.0),
        ("pagerduty", 2.0),
        ("alertmanager", 10.0),
        ("webhook", 10.0),
    ],
)
def test_default_rates_and_overrides(type_: str, rate: float) -> None:
    fields = {"url": "http://127.0.0.1:9/x", "chat_id": "1", "timeout": 3.0}
    default = build_sink(config(type_, **fields), "secret")
    tuned = build_sink(config(type_, rate_per_s=0.25, **fields), "secret")
    assert not isinstance(default, FileSink)
    assert not isinstance(tuned, FileSink)
    assert (default.rate_per_s, tuned.rate_per_s) == (rate, 0.25)
    assert getattr(default, "timeout_s", None) == 3.0
    assert isinstance(default.render(NOTE), HttpRequest)


def test_sinks_satisfy_the_protocol() -> None:
    sinks: list[Sink] = [slack(), discord(), telegram(), teams(), pagerduty(), alertmanager()]
    assert [s.name for s in sinks] == [
        "my-slack",
        "my-discord",
        "my-telegram",
        "my-teams",
        "my-pagerduty",
        "my-alertmanager",
    ]


@pytest.mark.parametrize(
    ("entry", "missing"),
    [
        (config("slack"), "no webhook URL"),
        (config("discord"), "no webhook URL"),
        (config("teams"), "no webhook URL"),
        (config("telegram", chat_id="1"), "no bot token"),
        (config("pagerduty"), "no routing key"),
        (config("alertmanager"), "url is required"),
        (config("webhook"), "url is required"),
        (config("file"), "path is required"),
    ],
)
def test_missing_settings_are_config_errors_naming_the_sink(
    entry: SinkConfig, missing: str
) -> None:
    with pytest.raises(ConfigError, match=f"sink 'my-{entry.type}'.*{missing}"):
        build_sink(entry, None)


def test_telegram_needs_a_chat_id() -> None:
    with pytest.raises(ConfigError, match="chat_id is required"):
        build_sink(config("telegram"), TELEGRAM_TOKEN)


# --- secrets ------------------------------------------------------------------------------------


def test_secret_from_environment_file_or_inline(tmp_path: Path) -> None:
    secret_file = tmp_path / "token"
    secret_file.write_text("from-file\n")
    environ = {"RISKMON_SLACK": "  from-env\n"}
    assert read_sink_secret(config("slack", secret_env="RISKMON_SLACK"), environ) == "from-env"
    assert read_sink_secret(config("slack", secret_file=str(secret_file)), {}) == "from-file"
    assert read_sink_secret(config("slack", secret="inline"), {}) == "inline"
    assert read_sink_secret(config("webhook"), {}) is None
    both = config("slack", secret_env="RISKMON_SLACK", secret_file=str(secret_file))
    assert read_sink_secret(both, environ) == "from-env"


def test_missing_environment_variable_names_sink_and_variable() -> None:
    with pytest.raises(ConfigError) as info:
        read_sink_secret(config("slack", secret_env="RISKMON_SLACK"), {"OTHER": SLACK_URL})
    assert "my-slack" in str(info.value)
    assert "RISKMON_SLACK" in str(info.value)
    assert SLACK_URL not in str(info.value)


def test_missing_or_empty_secret_file_names_sink_and_file(tmp_path: Path) -> None:
    absent = tmp_path / "absent"
    with pytest.raises(ConfigError, match=f"'my-pagerduty'.*{absent}.*No such file"):
        read_sink_secret(config("pagerduty", secret_file=str(absent)), {})
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(ConfigError, match=f"'my-pagerduty'.*{empty} is empty"):
        read_sink_secret(config("pagerduty", secret_file=str(empty)), {})
