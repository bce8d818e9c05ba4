"""Session behaviours that need a scripted server: maintenance notices and busy pings.

Small websockets servers on 127.0.0.1 stand in for the venue.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json

from websockets.asyncio.server import ServerConnection, serve

from feeds.backoff import Backoff
from feeds.events import FeedEvent, PriceKind, Quote
from feeds.session import Connection
from feeds.venues.binance import BINANCE
from feeds.venues.bybit import BYBIT, PING
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
        # connected is set once subscribed, before the second ticker has been received
        await eventually(
            lambda: sum(isinstance(e, Quote) for e in received) >= 2,
            "the second connection's ticker",
        )
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


BINANCE_TRADE = (
    '{"stream":"btcusdt@trade","data":{"e":"trade","E":1700000000000,"s":"BTCUSDT","t":1,'
    '"p":"30000.5","q":"0.1","T":1700000000000,"m":true}}'
)
BYBIT_TRADE = (
    '{"topic":"publicTrade.BTCUSDT","type":"snapshot","ts":1700000000001,"data":['
    '{"T":1700000000000,"s":"BTCUSDT","S":"Sell","v":"0.004","p":"65114.20","L":"MinusTick",'
    '"i":"x","BT":false}]}'
)


async def test_silent_connection_is_restarted_as_dead() -> None:
    """A socket that stays open (pings answered) but delivers no frame is replaced."""
    accepted: list[ServerConnection] = []

    async def venue(ws: ServerConnection) -> None:
        accepted.append(ws)
        await ws.send(BINANCE_TRADE)
        await ws.wait_closed()  # then silence, while websockets answers pings

    received: list[FeedEvent] = []
    async with serve(venue, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        plan = BINANCE.plan(f"ws://127.0.0.1:{port}", ["BTCUSDT"], PriceKind.TRADE)[0]
        conn = Connection(
            BINANCE,
            plan,
            PriceKind.TRADE,
            lambda v, e, m: received.extend(e),
            backoff=Backoff(initial_s=0.05, max_s=0.1),
            dead_after_s=0.5,
        )
        task = asyncio.create_task(conn.run())
        await eventually(
            lambda: len(accepted) >= 2 and conn.stats.connections >= 2,
            "a new connection after the silence",
        )
        assert conn.stats.reconnects >= 1
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert [getattr(e, "price", None) for e in received[:2]] == [30000.5, 30000.5]


async def test_busy_connection_still_pings_when_the_venue_asks() -> None:
    """Bybit wants a ping every interval even while data flows; frames keep flowing too."""
    pings: list[str] = []
    quiet = asyncio.Event()

    async def venue(ws: ServerConnection) -> None:
        await ws.recv()  # the subscribe frame

        async def listen() -> None:
            async for message in ws:
                pings.append(str(message))

        listener = asyncio.create_task(listen())
        while not quiet.is_set():
            await ws.send(BYBIT_TRADE)
            await asyncio.sleep(0.01)
        listener.cancel()
        await ws.wait_closed()

    busy = dataclasses.replace(BYBIT, idle_ping_s=0.3)
    received: list[FeedEvent] = []
    async with serve(venue, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        plan = busy.plan(f"ws://127.0.0.1:{port}", ["BTCUSDT"], PriceKind.TRADE)[0]
        conn = Connection(busy, plan, PriceKind.TRADE, lambda v, e, m: received.extend(e))
        task = asyncio.create_task(conn.run())
        await eventually(lambda: len(pings) >= 3, "three pings while trades flow")
        quiet.set()
        assert set(pings) == {PING}
        assert len(received) > 30
        assert conn.stats.connections == 1
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
