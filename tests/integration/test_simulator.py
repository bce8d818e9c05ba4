"""The exchange simulator: its market model, its venues' wire formats and its fault injection.

Loopback only. Every wait is bounded by a timeout derived from ``TIMEOUT_S``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import math
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from feeds.simulator import (
    ExchangeSimulator,
    MarketModel,
    Regime,
    ReplaySource,
    SimTick,
    default_crash_scenario,
)
from feeds.simulator.endpoints import (
    BinanceEndpoint,
    CoinbaseEndpoint,
    DeribitEndpoint,
    Endpoint,
)

TIMEOUT_S = 5.0
QUIET_S = TIMEOUT_S / 25  # how long "nothing arrives" is watched
HEARTBEAT_S = TIMEOUT_S / 25  # Deribit heartbeat interval used in the tests
START_TS = 1_767_225_600.0  # 2026-01-01T00:00:00Z
ALL_BINANCE = "/".join(
    f"{s}@{k}"
    for s in ("btcusdt", "ethusdt", "solusdt", "bnbusdt", "xrpusdt")
    for k in ("trade", "bookTicker")
)

Json = dict[str, Any]


# --- market model -------------------------------------------------------------------------


def _model(seed: int, regimes: list[Regime] | None = None) -> MarketModel:
    scenario = default_crash_scenario()
    return MarketModel(scenario.symbols, regimes or list(scenario.regimes), seed, START_TS)


def test_model_is_deterministic_for_a_seed_and_independent_of_call_pattern() -> None:
    """Same seed, same ticks, however time is advanced; another seed gives other ticks."""
    one_call = _model(3).events_until(START_TS + 600.0)
    chunked = _model(3)
    pieces = [chunked.events_until(START_TS + t) for t in np.arange(0.7, 600.0, 13.1)]
    pieces.append(chunked.events_until(START_TS + 600.0))
    assert list(itertools.chain.from_iterable(pieces)) == one_call
    assert _model(4).events_until(START_TS + 600.0) != one_call
    assert all(a.ts <= b.ts for a, b in itertools.pairwise(one_call))
    assert all(START_TS < t.ts <= START_TS + 600.0 for t in one_call)


def _hayashi_yoshida(a: list[SimTick], b: list[SimTick]) -> float:
    """Hayashi-Yoshida correlation of two asynchronously observed log prices."""
    ta, xa = np.array([t.ts for t in a]), np.log([t.price for t in a])
    tb, xb = np.array([t.ts for t in b]), np.log([t.price for t in b])
    inside = (ta[:-1] >= tb[0]) & (ta[1:] <= tb[-1])
    start, end, dx = ta[:-1][inside], ta[1:][inside], np.diff(xa)[inside]
    after_end = xb[np.searchsorted(tb, end, side="left")]
    before_start = xb[np.searchsorted(tb, start, side="right") - 1]
    cov = float(np.sum(dx * (after_end - before_start)))
    return cov / math.sqrt(float(np.sum(dx**2)) * float(np.sum(np.diff(xb) ** 2)))


def _pair_correlations(ticks: list[SimTick]) -> list[float]:
    by_symbol: dict[str, list[SimTick]] = {}
    for tick in ticks:
        by_symbol.setdefault(tick.symbol, []).append(tick)
    pairs = itertools.combinations(by_symbol.values(), 2)
    return [_hayashi_yoshida(a, b) for a, b in pairs]


def test_realised_correlation_follows_the_regimes() -> None:
    """Hayashi-Yoshida correlations are near 0.25 in the calm and 0.95 in the crash regime."""
    regimes = [Regime(3600.0, 0.25, 0.5, 0.0, "calm"), Regime(3600.0, 0.95, 2.0, 0.0, "crash")]
    model = _model(11, regimes)
    calm = model.events_until(START_TS + 3600.0)
    crash = model.events_until(START_TS + 7200.0)
    for ticks, rho in ((calm, 0.25), (crash, 0.95)):
        correlations = _pair_correlations(ticks)
        assert len(correlations) == 10
        assert abs(float(np.mean(correlations)) - rho) < 0.05
        assert all(abs(c - rho) < 0.1 for c in correlations), correlations


def test_tick_rates_differ_per_symbol_as_configured() -> None:
    """Each symbol ticks at its own rate: BTC at 10 Hz down to XRP at 1 Hz."""
    duration_s = 7200.0
    ticks = _model(5).events_until(START_TS + duration_s)
    for spec in default_crash_scenario().symbols:
        count = sum(1 for t in ticks if t.symbol == spec.name)
        assert count / duration_s == pytest.approx(spec.tick_rate_hz, rel=0.05)


def test_default_crash_scenario_falls_about_fifteen_percent_in_the_crash() -> None:
    """The crash regime takes prices down about 15% in 30 simulated minutes."""
    model = _model(2)
    calm = model.events_until(START_TS + 1800.0)
    crash = model.events_until(START_TS + 3600.0)
    assert model.regime_at(START_TS + 2000.0).name == "crash"
    assert model.regime_at(START_TS + 1e6).name == "recovery"
    for symbol in ("BTCUSDT", "ETHUSDT"):
        before = [t.price for t in calm if t.symbol == symbol][-1]
        after = [t.price for t in crash if t.symbol == symbol][-1]
        assert 0.75 < after / before < 0.95
    assert all(t.bid < t.price < t.ask for t in crash)
    assert {t.vol_annual for t in crash} == {2.5}


def test_replay_source_serves_recorded_ticks_in_order() -> None:
    """A replay returns the recorded ticks, sorted, each once."""
    recorded = _model(8).events_until(START_TS + 60.0)
    replay = ReplaySource(reversed(recorded))
    assert replay.start_ts == recorded[0].ts
    assert replay.events_until(START_TS + 30.0) + replay.events_until(START_TS + 61.0) == recorded
    assert replay.events_until(START_TS + 1e6) == []


# --- endpoints (sans I/O) ------------------------------------------------------------------

_KEYS = ("method", "params", "id", "type", "channel", "product_ids", "channels", "interval")
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(_KEYS), inner),
    max_leaves=12,
)
_requests = st.dictionaries(st.sampled_from(_KEYS), _json_values) | _json_values


@given(request=_requests, raw_tail=st.binary(max_size=4))
def test_endpoints_answer_any_input_without_raising(request: object, raw_tail: bytes) -> None:
    """Whatever a client sends, each venue answers with frames (possibly errors), never raises."""
    endpoints: list[Endpoint] = [
        BinanceEndpoint("/ws"),
        CoinbaseEndpoint({"BTC-USD": "BTCUSDT"}, {}, now=0.0),
        DeribitEndpoint({"BTCUSDT": "BTC-PERPETUAL"}, None, min_heartbeat_s=10.0),
    ]
    payload = json.dumps(request).encode()
    for endpoint in endpoints:
        for raw in (payload, payload + raw_tail):
            for frame in endpoint.on_message(raw, 1.0, START_TS):
                assert isinstance(json.loads(frame), dict)


# --- servers ------------------------------------------------------------------------------


@pytest.fixture
async def sim() -> AsyncIterator[ExchangeSimulator]:
    simulator = ExchangeSimulator(
        start_ts=START_TS,
        seed=7,
        min_heartbeat_s=HEARTBEAT_S / 2,
        subscribe_deadline_s=TIMEOUT_S / 5,
        close_timeout_s=TIMEOUT_S / 10,
    )
    async with asyncio.timeout(TIMEOUT_S), simulator:
        yield simulator


def _connect(uri: str, **kwargs: Any) -> connect:
    """A client that gives up the closing handshake quickly: tests close with unread frames,
    and a websockets client that stopped reading never sees the server's close frame."""
    return connect(uri, close_timeout=TIMEOUT_S / 50, **kwargs)


async def _recv_json(ws: ClientConnection) -> Any:
    async with asyncio.timeout(TIMEOUT_S):
        return json.loads(await ws.recv())


async def _recv_until(ws: ClientConnection, done: Callable[[Json], bool]) -> list[Json]:
    """Frames received up to and including the first one for which ``done`` is true."""
    frames: list[Json] = []
    async with asyncio.timeout(TIMEOUT_S):
        while not frames or not done(frames[-1]):
            frames.append(json.loads(await ws.recv()))
    return frames


async def _wait_for(condition: Callable[[], bool]) -> None:
    """Poll a counter of the simulator (it offers no event to wait on) until ``condition``."""
    async with asyncio.timeout(TIMEOUT_S):
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(TIMEOUT_S / 500)


def _decimal_string(value: object) -> float:
    assert isinstance(value, str)
    return float(value)


async def test_binance_combined_stream_frames_have_the_exact_shape(sim: ExchangeSimulator) -> None:
    """/stream?streams= delivers wrapped trade and bookTicker payloads with the venue's types."""
    url = f"{sim.binance_url}/stream?streams=btcusdt@trade/btcusdt@bookTicker"
    async with _connect(url) as ws:
        frames = await _recv_until(ws, lambda f: "e" not in f["data"])
        frames += await _recv_until(ws, lambda f: "e" in f["data"])
    trade = next(f for f in frames if f["stream"] == "btcusdt@trade")
    book = next(f for f in frames if f["stream"] == "btcusdt@bookTicker")
    assert set(trade) == {"stream", "data"}
    assert set(book) == {"stream", "data"}
    data = trade["data"]
    assert set(data) == {"e", "E", "s", "t", "p", "q", "T", "m", "M"}
    assert (data["e"], data["s"]) == ("trade", "BTCUSDT")
    assert all(isinstance(data[k], int) for k in ("E", "t", "T"))
    assert isinstance(data["m"], bool)
    assert abs(data["T"] / 1000.0 - START_TS) < 600.0
    assert 50_000.0 < _decimal_string(data["p"]) < 150_000.0
    assert len(data["p"].split(".")[1]) == 8
    assert _decimal_string(data["q"]) > 0
    quote = book["data"]
    assert set(quote) == {"u", "s", "b", "B", "a", "A"}
    assert quote["s"] == "BTCUSDT"
    assert isinstance(quote["u"], int)
    assert 0 < _decimal_string(quote["a"]) - _decimal_string(quote["b"]) < 100.0


async def test_binance_ws_subscribe_is_acknowledged_and_serves_raw_payloads(
    sim: ExchangeSimulator,
) -> None:
    """/ws + SUBSCRIBE gets {"result":null,"id":1}, then raw payloads; UNSUBSCRIBE stops them."""
    async with _connect(f"{sim.binance_url}/ws") as ws:
        await ws.send(json.dumps({"method": "SUBSCRIBE", "params": ["ethusdt@trade"], "id": 1}))
        assert await _recv_json(ws) == {"result": None, "id": 1}
        payload = await _recv_json(ws)
        assert (payload["e"], payload["s"]) == ("trade", "ETHUSDT")
        assert sim.subscriptions("binance") == ["ethusdt@trade"]
        await ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 2}))
        listed = await _recv_until(ws, lambda f: f.get("id") == 2)
        assert listed[-1] == {"result": ["ethusdt@trade"], "id": 2}
        await ws.send(json.dumps({"method": "UNSUBSCRIBE", "params": ["ethusdt@trade"], "id": 3}))
        assert (await _recv_until(ws, lambda f: f.get("id") == 3))[-1] == {"result": None, "id": 3}
        assert sim.subscriptions("binance") == []


async def test_binance_unknown_path_and_rejected_handshakes(sim: ExchangeSimulator) -> None:
    """An unknown path gets HTTP 404; reject_handshakes answers with the given status."""
    with pytest.raises(InvalidStatus) as not_found:
        await _connect(f"{sim.binance_url}/nope")
    assert not_found.value.response.status_code == 404
    sim.reject_handshakes("coinbase", 503)
    with pytest.raises(InvalidStatus) as unavailable:
        await _connect(sim.coinbase_url)
    assert unavailable.value.response.status_code == 503


async def _coinbase_subscribe(ws: ClientConnection, *channels: str) -> None:
    for channel in channels:
        request = {"type": "subscribe", "product_ids": ["BTC-USD"], "channel": channel}
        await ws.send(json.dumps(request))


def _assert_coinbase_envelope(frame: Json) -> None:
    assert set(frame) == {"channel", "client_id", "timestamp", "sequence_num", "events"}
    assert isinstance(frame["sequence_num"], int)
    assert frame["timestamp"].endswith("Z")
    assert isinstance(frame["events"], list)
    assert len(frame["events"]) == 1


async def test_coinbase_frames_have_the_exact_shape_and_consecutive_sequence(
    sim: ExchangeSimulator,
) -> None:
    """Subscriptions ack, market_trades, ticker and heartbeats share one sequence_num counter."""
    async with _connect(sim.coinbase_url) as ws:
        await _coinbase_subscribe(ws, "market_trades", "ticker", "heartbeats")
        frames = await _recv_until(ws, lambda f: f["channel"] == "heartbeats")
    assert [f["sequence_num"] for f in frames] == list(range(len(frames)))
    assert frames[0]["channel"] == "subscriptions"
    assert frames[0]["events"][0] == {"subscriptions": {"market_trades": ["BTC-USD"]}}
    for frame in frames:
        _assert_coinbase_envelope(frame)
    trades = [f["events"][0] for f in frames if f["channel"] == "market_trades"]
    assert trades[-1]["type"] == "update"
    trade = trades[-1]["trades"][0]
    assert set(trade) == {"trade_id", "product_id", "price", "size", "side", "time"}
    assert trade["product_id"] == "BTC-USD"
    assert trade["side"] in ("BUY", "SELL")
    assert _decimal_string(trade["price"]) > 0
    assert _decimal_string(trade["size"]) > 0
    ticker = next(f for f in frames if f["channel"] == "ticker")["events"][0]["tickers"][-1]
    assert ticker["type"] == "ticker"
    assert ticker["product_id"] == "BTC-USD"
    best_bid, best_ask = (_decimal_string(ticker[k]) for k in ("best_bid", "best_ask"))
    assert best_bid < _decimal_string(ticker["price"]) < best_ask
    beat = frames[-1]["events"][0]
    assert set(beat) == {"current_time", "heartbeat_counter"}
    assert beat["heartbeat_counter"] == 1


async def test_coinbase_inject_gap_skips_exactly_one_sequence_number(
    sim: ExchangeSimulator,
) -> None:
    """After inject_gap one sequence_num is missing; numbering goes on by one after it."""
    async with _connect(sim.coinbase_url) as ws:
        await _coinbase_subscribe(ws, "ticker")
        frames = await _recv_until(ws, lambda f: f["sequence_num"] >= 3)
        sim.inject_gap("coinbase")
        last: int = frames[-1]["sequence_num"]

        def gapped(frame: Json) -> bool:
            nonlocal last
            seq: int = frame["sequence_num"]
            jumped, last = seq != last + 1, seq
            return jumped

        frames += await _recv_until(ws, gapped)
        frames += await _recv_until(ws, lambda f: f["sequence_num"] >= last + 5)
    steps = [b - a for a, b in itertools.pairwise(f["sequence_num"] for f in frames)]
    assert sorted(steps) == [1] * (len(steps) - 1) + [2]


async def test_coinbase_closes_connections_that_never_subscribe(sim: ExchangeSimulator) -> None:
    """Like the venue, a connection without a subscribe message is closed."""
    async with _connect(sim.coinbase_url) as ws:
        with pytest.raises(ConnectionClosed):
            await _recv_json(ws)
    assert ws.close_code == 1008


def _rpc(request_id: int, method: str, **params: Any) -> str:
    return json.dumps({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})


async def test_deribit_ticker_notifications_have_the_exact_shape(sim: ExchangeSimulator) -> None:
    """public/subscribe returns the channels; perpetual and option tickers carry their fields."""
    option = sim.deribit_option
    assert option is not None
    channels = ["ticker.BTC-PERPETUAL.100ms", f"ticker.{option}.100ms", "ticker.NOPE.100ms"]
    async with _connect(sim.deribit_url) as ws:
        await ws.send(_rpc(1, "public/subscribe", channels=channels))
        reply = await _recv_json(ws)
        notes = await _recv_until(ws, lambda f: "greeks" in f["params"]["data"])
        notes += await _recv_until(ws, lambda f: "greeks" not in f["params"]["data"])
    assert (reply["jsonrpc"], reply["id"], reply["result"]) == ("2.0", 1, channels[:2])
    perp = next(n for n in notes if n["params"]["channel"] == channels[0])
    assert perp["method"] == "subscription"
    data = perp["params"]["data"]
    assert data["instrument_name"] == "BTC-PERPETUAL"
    assert isinstance(data["timestamp"], int)
    prices = ("mark_price", "index_price", "best_bid_price", "best_ask_price", "last_price")
    assert all(isinstance(data[k], float) for k in prices)
    assert data["best_bid_price"] < data["best_ask_price"]
    opt = next(n for n in notes if n["params"]["channel"] == channels[1])["params"]["data"]
    assert opt["mark_iv"] == 50.0
    assert opt["bid_iv"] < opt["mark_iv"] < opt["ask_iv"]
    assert 0 < opt["mark_price"] < 1
    assert opt["underlying_price"] > 10_000
    assert set(opt["greeks"]) == {"delta", "gamma", "vega", "theta", "rho"}
    assert 0 < opt["greeks"]["delta"] < 1


async def _answer_test_requests(ws: ClientConnection, until: float) -> int:
    answered = 0
    loop = asyncio.get_running_loop()
    while loop.time() < until:
        frame = await _recv_json(ws)
        if frame.get("params", {}).get("type") == "test_request":
            answered += 1
            await ws.send(_rpc(100 + answered, "public/test"))
    return answered


async def test_deribit_heartbeat_answered_keeps_the_connection(sim: ExchangeSimulator) -> None:
    """test_request every interval; answering with public/test keeps the connection open."""
    async with _connect(sim.deribit_url) as ws:
        await ws.send(_rpc(1, "public/subscribe", channels=["ticker.ETH-PERPETUAL.100ms"]))
        await ws.send(_rpc(2, "public/set_heartbeat", interval=HEARTBEAT_S))
        await _recv_until(ws, lambda f: f.get("id") == 2 and f["result"] == "ok")
        until = asyncio.get_running_loop().time() + 5 * HEARTBEAT_S
        answered = await _answer_test_requests(ws, until)
        assert answered >= 3
        assert sim.connections("deribit") == 1
        await ws.send(_rpc(3, "public/set_heartbeat", interval=HEARTBEAT_S / 10))
        error = (await _recv_until(ws, lambda f: f.get("id") == 3))[-1]["error"]
        assert error["code"] == -32602


async def test_deribit_unanswered_test_request_closes_the_connection(
    sim: ExchangeSimulator,
) -> None:
    """Without public/test after a test_request, the server closes the connection."""
    async with _connect(sim.deribit_url) as ws:
        await ws.send(_rpc(1, "public/set_heartbeat", interval=HEARTBEAT_S))
        assert (await _recv_json(ws))["result"] == "ok"
        assert (await _recv_json(ws))["params"] == {"type": "test_request"}
        with pytest.raises(ConnectionClosed):
            await _recv_json(ws)
    assert ws.close_code == 1008
    await _wait_for(lambda: sim.connections("deribit") == 0)


async def _drain_until_closed(ws: ClientConnection) -> None:
    """Read (and discard) frames until the connection closes."""
    async with asyncio.timeout(TIMEOUT_S):
        with contextlib.suppress(ConnectionClosed):
            while True:
                await ws.recv()
    assert ws.close_code is not None


async def test_drop_connections_aborts_every_client(sim: ExchangeSimulator) -> None:
    """drop_connections closes all clients abnormally (1006) and counts them."""
    async with (
        _connect(f"{sim.binance_url}/stream?streams=btcusdt@trade") as binance,
        _connect(sim.coinbase_url) as coinbase,
    ):
        await _coinbase_subscribe(coinbase, "heartbeats")
        await _wait_for(lambda: sim.connections("binance") + sim.connections("coinbase") == 2)
        assert sim.drop_connections() == 2
        for ws in (binance, coinbase):
            await _drain_until_closed(ws)
            assert ws.close_code == 1006
    await _wait_for(lambda: sim.connections("binance") + sim.connections("coinbase") == 0)


async def test_accept_and_close_closes_new_connections_at_once(sim: ExchangeSimulator) -> None:
    """With accept_and_close on, handshakes succeed and the server closes at once (1013)."""
    sim.set_accept_and_close("binance", True)
    for _ in range(3):
        async with _connect(f"{sim.binance_url}/stream?streams=btcusdt@trade") as ws:
            await _drain_until_closed(ws)
        assert ws.close_code == 1013
    assert sim.stats("binance").accepted == 3
    assert sim.connections("binance") == 0
    sim.set_accept_and_close("binance", False)
    async with _connect(f"{sim.binance_url}/stream?streams=btcusdt@trade") as ws:
        assert (await _recv_json(ws))["stream"] == "btcusdt@trade"


async def test_silence_stops_one_symbol_while_others_flow(sim: ExchangeSimulator) -> None:
    """While ETHUSDT is silenced no ETH trade newer than the switch arrives; BTC keeps flowing."""
    url = f"{sim.binance_url}/stream?streams=btcusdt@trade/ethusdt@trade"
    async with _connect(url) as ws:
        await _recv_until(ws, lambda f: f["data"]["s"] == "ETHUSDT")
        sim.silence("binance", "ETHUSDT", True)
        cutoff_ms = sim.sim_time() * 1000.0
        frames = await _recv_until(ws, lambda f: f["data"]["T"] > cutoff_ms + 30_000)
        late = [f["data"] for f in frames if f["data"]["T"] > cutoff_ms]
        assert late
        assert all(d["s"] == "BTCUSDT" for d in late)
        sim.silence("binance", "ETHUSDT", False)
        await _recv_until(ws, lambda f: f["data"]["s"] == "ETHUSDT")


def _binance_frame_ok(raw: str | bytes) -> bool:
    try:
        frame = json.loads(raw)
        return isinstance(frame, dict) and isinstance(frame["data"]["p"], str)
    except (ValueError, KeyError, TypeError):
        return False


async def test_malformed_frames_are_interleaved_with_good_ones(sim: ExchangeSimulator) -> None:
    """inject_malformed sends n bad frames (bad JSON, wrong types), each after a good one."""
    async with _connect(f"{sim.binance_url}/stream?streams=btcusdt@trade") as ws:
        await _recv_json(ws)
        sim.inject_malformed("binance", 3)
        verdicts: list[bool] = []
        async with asyncio.timeout(TIMEOUT_S):
            while verdicts.count(False) < 3:
                verdicts.append(_binance_frame_ok(await ws.recv()))
    assert sim.stats("binance").malformed_sent == 3
    assert all(a or b for a, b in itertools.pairwise(verdicts)), "two bad frames in a row"


async def _quiet(ws: ClientConnection) -> bool:
    """Whether no frame arrives for QUIET_S."""
    try:
        async with asyncio.timeout(QUIET_S):
            await ws.recv()
    except TimeoutError:
        return True
    return False


async def test_stall_keeps_the_connection_open_but_sends_nothing(sim: ExchangeSimulator) -> None:
    """A stalled venue sends no frame yet answers pings; data resumes when the stall ends."""
    async with _connect(f"{sim.binance_url}/stream?streams=btcusdt@trade") as ws:
        await _recv_json(ws)
        sim.stall("binance", True)
        async with asyncio.timeout(TIMEOUT_S):
            while not await _quiet(ws):  # frames already on the wire may still arrive
                pass
        assert await _quiet(ws)
        async with asyncio.timeout(TIMEOUT_S):
            await (await ws.ping())
        assert sim.connections("binance") == 1
        sim.stall("binance", False)
        assert (await _recv_json(ws))["stream"] == "btcusdt@trade"


async def test_slow_client_queue_stays_bounded() -> None:
    """A client that stops reading makes the server drop its oldest frames, not grow memory."""
    maxsize = 256
    simulator = ExchangeSimulator(
        start_ts=START_TS,
        speed=120.0,
        outbox_maxsize=maxsize,
        send_buffer_bytes=16_384,
        close_timeout_s=TIMEOUT_S / 50,
    )
    async with asyncio.timeout(TIMEOUT_S), simulator:
        url = urlsplit(simulator.binance_url)
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect((url.hostname, url.port))
        sock.setblocking(False)
        uri = f"{simulator.binance_url}/stream?streams={ALL_BINANCE}"
        async with _connect(uri, sock=sock, max_queue=1):
            await _wait_for(lambda: simulator.stats("binance").frames_dropped > 0)
            stats = simulator.stats("binance")
            assert stats.max_queued == maxsize
            async with _connect(f"{simulator.binance_url}/ws/xrpusdt@trade") as healthy:
                assert (await _recv_json(healthy))["s"] == "XRPUSDT"
