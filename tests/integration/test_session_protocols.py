"""Session behaviours that need a scripted server: maintenance notices and busy pings.

Small websockets servers on 127.0.0.1 stand in for the venue.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json

from websockets.asyncio.server import ServerConnection, serve

from feeds.backoff import Backoff
from feeds.events import FeedEvent, PriceKind
from feeds.session import Connection
from feeds.venues.okx import OKX
from tests.integration.test_live_feeds import eventually

TICKER = json.dumps(
    {
        "arg": {"channel": "tickers", "instId": "BTC-USDT"},
        "data": [
            {
                "instId": "BTC-USDT",
                "last": "30236",
                "bidPx": "30228.6",
                "askPx": "30228.7",
                "ts": "1652459224956",
            }
        ],
    }
)
NOTICE = json.dumps(
    {"event": "notice", "code": "64008", "msg": "The connection will soon be closed."}
)


async def test_okx_maintenance_notice_leads_to_a_clean_reconnect() -> None:
    """After 64008 the client closes and reconnects at once, before the venue cuts it."""
    accepted: list[ServerConnection] = []

    async def venue(ws: ServerConnection) -> None:
        accepted.append(ws)
        await ws.recv()  # the subscribe frame
        await ws.send(TICKER)
        if len(accepted) == 1:
            await ws.send(NOTICE)
        await ws.wait_closed()

    received: list[FeedEvent] = []
    async with serve(venue, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        plan = OKX.plan(f"ws://127.0.0.1:{port}", ["BTC-USDT"], PriceKind.MID)[0]
        conn = Connection(
            OKX,
            plan,
            PriceKind.MID,
            lambda v, e, m: received.extend(e),
            backoff=Backoff(initial_s=0.05, max_s=1.0),
        )
        task = asyncio.create_task(conn.run())
        await eventually(lambda: len(accepted) >= 2, "a second connection after the notice")
        await eventually(lambda: conn.stats.connected, "connected again")
        assert conn.stats.connections == 2
        assert conn.stats.parse_errors == 0
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    prices = [e.price for e in received if hasattr(e, "price")]
    assert prices.count(30228.65) == 2  # the mid of both connections' tickers


async def test_idle_ping_keeps_a_quiet_connection_alive() -> None:
    """OKX wants a text "ping" when nothing arrives; the server answers "pong"."""
    pings: list[str] = []

    async def venue(ws: ServerConnection) -> None:
        await ws.recv()
        async for message in ws:
            pings.append(str(message))
            await ws.send("pong")

    quiet = dataclasses.replace(OKX, idle_ping_s=0.3)
    async with serve(venue, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        plan = quiet.plan(f"ws://127.0.0.1:{port}", ["BTC-USDT"], PriceKind.MID)[0]
        conn = Connection(quiet, plan, PriceKind.MID, lambda v, e, m: None)
        task = asyncio.create_task(conn.run())
        await eventually(lambda: len(pings) >= 2, "two idle pings")
        assert set(pings) == {"ping"}
        assert conn.stats.connections == 1
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
