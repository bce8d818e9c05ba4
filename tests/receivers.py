"""A local HTTP receiver standing in for Slack, Discord, Telegram, Teams, PagerDuty, Alertmanager.

One aiohttp server on 127.0.0.1 (a free port) with a route per path. Each route answers the way
its API accepts a message (:data:`ACCEPTANCES`) unless a script of failures is queued for that
path (:meth:`Receiver.script`): replies with any status and headers, or a stall longer than the
client's timeout. :meth:`Receiver.down` closes the listening socket and every open connection
(new connections are refused); :meth:`Receiver.up` listens again on the same port. Every request
is recorded with its path, headers, body, parsed JSON and arrival time on the loop's clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from aiohttp import web

HOST = "127.0.0.1"


@dataclass(frozen=True, slots=True)
class Reply:
    """What the receiver answers: status, body, headers, after an optional stall."""

    status: int = 200
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    stall_s: float = 0.0


@dataclass(frozen=True, slots=True)
class Recorded:
    """One request as it arrived."""

    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]
    body: bytes
    json: Any
    arrived: float


Acceptance = Callable[[Recorded], Reply]
"""The answer of an API that accepts the request."""


def json_reply(status: int, payload: Any, headers: Mapping[str, str] | None = None) -> Reply:
    """A JSON answer."""
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    return Reply(status, json.dumps(payload).encode(), all_headers)


def status(code: int, *, retry_after: float | None = None, body: bytes = b"") -> Reply:
    """A bare status, with a Retry-After header when given."""
    headers = {} if retry_after is None else {"Retry-After": f"{retry_after:g}"}
    return Reply(code, body, headers)


def stall(seconds: float) -> Reply:
    """No answer for ``seconds`` (longer than the client's timeout to emulate a timeout)."""
    return Reply(200, stall_s=seconds)


def slack_ok(request: Recorded) -> Reply:
    """Slack: ``200 ok`` as text."""
    return Reply(200, b"ok", {"Content-Type": "text/plain"})


def discord_ok(request: Recorded) -> Reply:
    """Discord: 204, or 200 with the created message when the URL asks ``?wait=true``."""
    if request.query.get("wait") == "true":
        content = (request.json or {}).get("content", "")
        return json_reply(200, {"id": "1", "channel_id": "1", "content": content})
    return Reply(204)


def telegram_ok(request: Recorded) -> Reply:
    """Telegram: ``{"ok": true, "result": <message>}``."""
    sent = request.json or {}
    message = {"message_id": 1, "chat": {"id": sent.get("chat_id")}, "text": sent.get("text")}
    return json_reply(200, {"ok": True, "result": message})


def teams_accepted(request: Recorded) -> Reply:
    """Teams Workflows: 202 Accepted, no body."""
    return Reply(202)


def pagerduty_accepted(request: Recorded) -> Reply:
    """PagerDuty Events API v2: 202 with the dedup key."""
    dedup_key = (request.json or {}).get("dedup_key")
    return json_reply(
        202, {"status": "success", "message": "Event processed", "dedup_key": dedup_key}
    )


def plain_ok(request: Recorded) -> Reply:
    """Alertmanager and generic webhooks: 200."""
    return Reply(200)


ACCEPTANCES: Mapping[str, Acceptance] = {
    "slack": slack_ok,
    "discord": discord_ok,
    "telegram": telegram_ok,
    "teams": teams_accepted,
    "pagerduty": pagerduty_accepted,
    "alertmanager": plain_ok,
    "webhook": plain_ok,
}
"""Acceptance answer by sink type."""


class Receiver:
    """The local receiver; use as ``async with Receiver({path: acceptance}) as receiver``."""

    def __init__(self, routes: Mapping[str, Acceptance] | None = None) -> None:
        self.requests: list[Recorded] = []
        self._routes: dict[str, Acceptance] = dict(routes or {})
        self._scripts: dict[str, deque[Reply]] = {}
        self._closing = asyncio.Event()
        self._arrival = asyncio.Condition()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=1.0)
        self._site: web.TCPSite | None = None
        self.port = 0

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://{HOST}:{self.port}"

    def route(self, path: str, acceptance: Acceptance) -> None:
        """Answer requests to ``path`` with ``acceptance`` (when no script is queued)."""
        self._routes[path] = acceptance

    def script(self, path: str, replies: Iterable[Reply]) -> None:
        """Answer the next requests to ``path`` with ``replies``, in order, then accept again."""
        self._scripts.setdefault(path, deque()).extend(replies)

    def requests_to(self, path: str) -> list[Recorded]:
        """The recorded requests to ``path``."""
        return [r for r in self.requests if r.path == path]

    async def wait_for(
        self, condition: Callable[[list[Recorded]], bool], timeout_s: float
    ) -> list[Recorded]:
        """Wait until ``condition(requests)`` holds; TimeoutError after ``timeout_s``."""
        async with asyncio.timeout(timeout_s), self._arrival:
            await self._arrival.wait_for(lambda: condition(self.requests))
        return list(self.requests)

    async def up(self) -> None:
        """Listen (again) on the port; the first call picks a free port."""
        self._site = web.TCPSite(self._runner, HOST, self.port)
        await self._site.start()
        self.port = self._site.port

    async def down(self) -> None:
        """Close the listening socket and every open connection: clients get refused."""
        if self._site is not None:
            await self._site.stop()
            self._site = None
        server = self._runner.server
        for connection in server.connections if server is not None else ():
            connection.force_close()

    async def __aenter__(self) -> Receiver:
        await self._runner.setup()
        await self.up()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._closing.set()  # ends stalls at once
        await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        recorded = await _record(request)
        async with self._arrival:
            self.requests.append(recorded)
            self._arrival.notify_all()
        reply = self._reply(recorded)
        if reply.stall_s > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), reply.stall_s)
        return web.Response(status=reply.status, body=reply.body, headers=dict(reply.headers))

    def _reply(self, recorded: Recorded) -> Reply:
        queued = self._scripts.get(recorded.path)
        if queued:
            return queued.popleft()
        acceptance = self._routes.get(recorded.path)
        return acceptance(recorded) if acceptance is not None else status(404)


async def _record(request: web.Request) -> Recorded:
    body = await request.read()
    try:
        parsed = json.loads(body) if body else None
    except ValueError:
        parsed = None
    return Recorded(
        method=request.method,
        path=request.path,
        query=dict(request.query),
        headers=dict(request.headers),
        body=body,
        json=parsed,
        arrived=asyncio.get_running_loop().time(),
    )
