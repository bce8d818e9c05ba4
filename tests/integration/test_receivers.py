"""Rendered sink requests, POSTed over loopback, are accepted by the local receivers; scripted
failures come back exactly as scripted and classify as each API's answer should."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import aiohttp
import pytest

from alerts.file import FileSink
from alerts.notification import HttpRequest, Outcome, Sink, Verdict
from alerts.sinks import build_sink
from alerts.webhook import SIGNATURE_HEADER
from monitor.config.schema import SinkConfig
from tests.receivers import ACCEPTANCES, Receiver, json_reply, stall, status
from tests.unit.alerts.test_sinks import NOTE, RESOLVED, TELEGRAM_TOKEN

TIMEOUT_S = 5.0
"""Every wait in this module scales from this."""

SLACK_PATH = "/services/T000/B000/hook"
TELEGRAM_PATH = f"/bot{TELEGRAM_TOKEN}/sendMessage"

# type, path the sink posts to, config fields (the receiver's URL is substituted for {base})
SINKS: list[tuple[str, str, dict[str, Any]]] = [
    ("slack", SLACK_PATH, {"url": "{base}" + SLACK_PATH}),
    ("discord", "/api/webhooks/1/token", {"url": "{base}/api/webhooks/1/token"}),
    ("telegram", TELEGRAM_PATH, {"url": "{base}", "chat_id": "-10042"}),
    ("teams", "/workflows/abc/triggers/manual", {"url": "{base}/workflows/abc/triggers/manual"}),
    ("pagerduty", "/v2/enqueue", {"url": "{base}"}),
    ("alertmanager", "/api/v2/alerts", {"url": "{base}"}),
    ("webhook", "/hook", {"url": "{base}/hook"}),
]


def sink_for(receiver: Receiver, type_: str, fields: dict[str, Any]) -> Sink:
    """A sink of ``type_`` pointed at ``receiver``."""
    resolved = {k: v.replace("{base}", receiver.url) for k, v in fields.items()}
    entry = SinkConfig(name=type_, type=type_, timeout=TIMEOUT_S, **resolved)  # type: ignore[arg-type]
    sink = build_sink(entry, TELEGRAM_TOKEN if type_ == "telegram" else "hmac-key")
    assert not isinstance(sink, FileSink)
    return sink


async def send(
    session: aiohttp.ClientSession, sink: Sink, request: HttpRequest, timeout_s: float = TIMEOUT_S
) -> Outcome:
    """POST ``request`` and classify the answer with ``sink``."""
    async with session.request(
        request.method,
        request.url,
        data=request.body,
        headers=dict(request.headers),
        timeout=aiohttp.ClientTimeout(total=timeout_s),
    ) as response:
        return sink.classify(response.status, response.headers, await response.read())


@pytest.mark.parametrize(("type_", "path", "fields"), SINKS, ids=[s[0] for s in SINKS])
async def test_each_sink_is_accepted_and_recorded(
    type_: str, path: str, fields: dict[str, Any]
) -> None:
    async with Receiver({path: ACCEPTANCES[type_]}) as receiver, aiohttp.ClientSession() as session:
        sink = sink_for(receiver, type_, fields)
        for note in (NOTE, RESOLVED):
            request = sink.render(note)
            outcome = await send(session, sink, request)
            assert outcome.verdict is Verdict.DELIVERED, outcome.detail
        first, second = receiver.requests
        assert (first.method, first.path, second.path) == ("POST", path, path)
        assert first.body == sink.render(NOTE).body
        assert first.json is not None
        assert first.headers["Content-Type"] == "application/json"
        assert first.arrived <= second.arrived


async def test_webhook_signature_arrives_and_verifies() -> None:
    async with Receiver({"/hook": ACCEPTANCES["webhook"]}) as receiver:
        sink = sink_for(receiver, "webhook", {"url": f"{receiver.url}/hook"})
        async with aiohttp.ClientSession() as session:
            await send(session, sink, sink.render(NOTE))
        (recorded,) = receiver.requests
        expected = hmac.new(b"hmac-key", recorded.body, hashlib.sha256).hexdigest()
        assert recorded.headers[SIGNATURE_HEADER] == f"sha256={expected}"
        assert recorded.json["dedup_key"] == NOTE.dedup_key


async def test_discord_wait_true_gets_the_created_message() -> None:
    async with Receiver({"/api/webhooks/1/t": ACCEPTANCES["discord"]}) as receiver:
        sink = sink_for(receiver, "discord", {"url": f"{receiver.url}/api/webhooks/1/t"})
        async with aiohttp.ClientSession() as session:
            request = sink.render(NOTE)
            async with session.post(request.url, data=request.body) as response:
                assert response.status == 200
                assert (await response.json())["content"] == NOTE.title
        assert receiver.requests[0].query == {"wait": "true"}


async def test_scripted_failures_come_back_in_order_then_acceptance() -> None:
    async with Receiver({SLACK_PATH: ACCEPTANCES["slack"]}) as receiver:
        sink = sink_for(receiver, "slack", {"url": receiver.url + SLACK_PATH})
        client_timeout_s = TIMEOUT_S / 25
        receiver.script(
            SLACK_PATH,
            [
                status(429, retry_after=2),
                status(500),
                stall(TIMEOUT_S),
                status(400, body=b"invalid_payload"),
            ],
        )
        request = sink.render(NOTE)
        async with aiohttp.ClientSession() as session:
            limited = await send(session, sink, request)
            failed = await send(session, sink, request)
            with pytest.raises(TimeoutError):
                await send(session, sink, request, timeout_s=client_timeout_s)
            rejected = await send(session, sink, request)
            accepted = await send(session, sink, request)
        assert (limited.verdict, limited.retry_after_s) == (Verdict.RETRY, 2.0)
        assert (failed.verdict, failed.retry_after_s) == (Verdict.RETRY, None)
        assert (rejected.verdict, rejected.detail) == (
            Verdict.REJECTED,
            "HTTP 400: invalid_payload",
        )
        assert accepted.verdict is Verdict.DELIVERED
        assert len(receiver.requests_to(SLACK_PATH)) == 5


async def test_venue_retry_after_styles_reach_classify() -> None:
    discord_path = "/api/webhooks/1/t"
    async with Receiver(
        {discord_path: ACCEPTANCES["discord"], TELEGRAM_PATH: ACCEPTANCES["telegram"]}
    ) as receiver:
        discord = sink_for(receiver, "discord", {"url": receiver.url + discord_path})
        telegram = sink_for(receiver, "telegram", {"url": receiver.url, "chat_id": "7"})
        limited_body = {
            "message": "You are being rate limited.",
            "retry_after": 0.64,
            "global": False,
        }
        receiver.script(discord_path, [json_reply(429, limited_body)])
        flood = {"ok": False, "error_code": 429, "parameters": {"retry_after": 3}}
        receiver.script(TELEGRAM_PATH, [json_reply(429, flood)])
        async with aiohttp.ClientSession() as session:
            from_discord = await send(session, discord, discord.render(NOTE))
            from_telegram = await send(session, telegram, telegram.render(NOTE))
        assert (from_discord.verdict, from_discord.retry_after_s) == (Verdict.RETRY, 0.64)
        assert (from_telegram.verdict, from_telegram.retry_after_s) == (Verdict.RETRY, 3.0)
        assert TELEGRAM_TOKEN not in from_telegram.detail


async def test_down_refuses_connections_and_up_listens_on_the_same_port() -> None:
    async with Receiver({"/hook": ACCEPTANCES["webhook"]}) as receiver:
        sink = sink_for(receiver, "webhook", {"url": f"{receiver.url}/hook"})
        port = receiver.port
        request = sink.render(NOTE)
        async with aiohttp.ClientSession() as session:
            assert (await send(session, sink, request)).verdict is Verdict.DELIVERED
            await receiver.down()
            with pytest.raises(aiohttp.ClientConnectionError):  # the kept-alive one is closed
                await send(session, sink, request)
            with pytest.raises(aiohttp.ClientConnectorError):  # a new one is refused
                await send(session, sink, request)
            await receiver.up()
            assert receiver.port == port
            assert (await send(session, sink, request)).verdict is Verdict.DELIVERED
        assert len(receiver.requests) == 2


async def test_unknown_path_is_404_and_recorded() -> None:
    async with Receiver() as receiver, aiohttp.ClientSession() as session:
        async with session.post(f"{receiver.url}/nowhere", json={"a": 1}) as response:
            assert response.status == 404
        assert receiver.requests[0].json == {"a": 1}
