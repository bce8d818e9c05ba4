"""What trade and mid streams carry and cost, measured on the recorded venue frames.

The recordings in ``../shared/data/recorded`` hold, per venue, one or two connections that
subscribed trades, top of book and more at once. A riskmon connection subscribes one channel
per price kind (``feeds/venues/*.py``), so each recording is split here into the frames of the
channel riskmon would subscribe for each kind, and those frames go, in recorded order, through
a fresh parser of that venue (``spec.new_parser()``), as on a dedicated connection. For each
(venue, instrument, kind) this gives:

- frames and quotes per second over the connection's recorded span (quotes of that kind only:
  the router drops the others, e.g. the last-trade price of a Coinbase or OKX ticker);
- parse CPU per frame: the median of timed passes over that stream's frames (process CPU
  clock, each pass at least ``MIN_PARSES`` frame parses, the frames repeated as needed);
- the relative tick size (smallest non-zero price change over the median price) and the noise
  seen in the quotes: per-tick noise std from the first-order autocovariance of tick log
  returns (``E[r_i r_{i-1}] = -omega^2`` for i.i.d. noise), and the share of zero returns.

Per instrument it also gives the tick of the book both streams see (:func:`book`).

Coinbase's ``market_trades`` opens with a snapshot of the last 100 trades per product: frames
whose oldest quote predates the connection by more than ``BACKLOG_S`` are history, left out of
rates and timings (their prices still count for the tick and noise figures). The noise
figures use every return of the recording, however far apart: the recordings are too short
to keep only close pairs.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import REPO
from feeds.events import PriceKind, Quote
from feeds.registry import VENUES

RECORDED_DIR = REPO.parent / "shared" / "data" / "recorded"
MIN_PARSES = 2000  # frame parses per timed pass
PASSES = 7
BACKLOG_S = 1.0

Channel = tuple[PriceKind, str] | None  # (kind, instrument) of a frame, None: not a price stream


def _binance(message: dict[str, Any]) -> Channel:
    name, _, stream = str(message.get("stream", "")).partition("@")
    kinds = {"trade": PriceKind.TRADE, "aggTrade": PriceKind.TRADE, "bookTicker": PriceKind.MID}
    kind = kinds.get(stream)
    return (kind, name.upper()) if kind else None


def _coinbase(message: dict[str, Any]) -> Channel:
    kinds = {"market_trades": PriceKind.TRADE, "ticker": PriceKind.MID}
    kind = kinds.get(str(message.get("channel")))
    if kind is None:
        return None
    for event in message.get("events", []):  # one product per frame in the recording
        for item in event.get("trades", []) + event.get("tickers", []):
            return kind, str(item["product_id"])
    return None


def _bybit(message: dict[str, Any], mid_topic: str = "tickers") -> Channel:
    topic, _, symbol = str(message.get("topic", "")).rpartition(".")
    kind = {"publicTrade": PriceKind.TRADE, mid_topic: PriceKind.MID}.get(topic)
    return (kind, symbol) if kind else None


def _bybit_spot(message: dict[str, Any]) -> Channel:
    return _bybit(message, mid_topic="orderbook.1")


def _okx(message: dict[str, Any]) -> Channel:
    arg = message.get("arg", {})
    kind = {"trades": PriceKind.TRADE, "tickers": PriceKind.MID}.get(arg.get("channel"))
    return (kind, str(arg["instId"])) if kind and "event" not in message else None


@dataclass(frozen=True)
class Recording:
    """One riskmon venue in a recording: the file, the connection, how to read its frames.

    Attributes:
        venue: riskmon venue name (``[[feeds]] venue``).
        file: recording name (``<file>.jsonl``).
        channel: the (kind, instrument) of a decoded frame, None for frames riskmon would
            not subscribe for a price.
        conn: the connection id, when the recording holds several.
        note: what differs from what riskmon subscribes.
    """

    venue: str
    file: str
    channel: Callable[[dict[str, Any]], Channel]
    conn: str | None = None
    note: str = ""


RECORDINGS = (
    Recording(
        "binance",
        "binance",
        _binance,
        note="spot trades recorded as aggTrade (riskmon subscribes @trade: as many or more)",
    ),
    Recording("binance-usdm", "binance_futures", _binance),
    Recording("coinbase", "coinbase", _coinbase),
    # BYBIT.ws.2 is the linear connection (its tickers carry bid1Price); BYBIT.ws.3 is spot
    # (the recording's spot BTC-USDT and ETH-USDT; spot tickers carry no best bid/ask).
    Recording("bybit", "bybit", _bybit, conn="BYBIT.ws.2"),
    Recording(
        "bybit-spot",
        "bybit",
        _bybit_spot,
        conn="BYBIT.ws.3",
        note="spot mid comes from orderbook.1, which the recording lacks (only orderbook.200)",
    ),
    Recording("okx", "okx", _okx),
)

NOT_MEASURED = {
    "kraken": "recording is Kraken's v1 API (2021); riskmon speaks v2 only",
    "deribit": "recording is option tickers (marks and implied vols), not trade or mid prices",
}


@dataclass
class Stream:
    """The frames of one (venue, instrument, kind) and the quotes they give, in recorded order."""

    frames: list[tuple[float, str]] = field(default_factory=list)
    backlog_frames: int = 0
    quotes: list[Quote] = field(default_factory=list)
    live_quotes: list[Quote] = field(default_factory=list)


@dataclass(frozen=True)
class StreamStats:
    """Measured figures of one (venue, instrument, kind) stream."""

    venue: str
    instrument: str
    kind: str
    duration_s: float
    frames_per_s: float
    quotes_per_s: float
    parse_us: float | None
    price: float
    tick_bp: float | None
    noise_bp: float | None
    zero_share: float | None
    returns: int


@dataclass(frozen=True)
class Book:
    """The tick of an instrument's book, in bp of its price, and where it was read from.

    ``source`` is "changes" (smallest price changes) or "decimals" (no price moved: the
    coarsest power of ten all prices sit on, an upper bound of the tick), "" when unknown.
    """

    tick_bp: float | None
    source: str


def recordings_present() -> bool:
    """Whether the shared recordings are there."""
    return all((RECORDED_DIR / f"{r.file}.jsonl").exists() for r in RECORDINGS)


def load_frames(recording: Recording) -> list[tuple[float, str]]:
    """``(recv_ts, data)`` of the received frames of the recording's connection."""
    path = RECORDED_DIR / f"{recording.file}.jsonl"
    with path.open(encoding="utf-8") as lines:
        records = [json.loads(line) for line in lines if line.strip()]
    return [
        (float(r["ts"]), str(r["data"]))
        for r in records
        if r.get("t") == "recv" and recording.conn in (None, r["conn"])
    ]


def split_streams(
    recording: Recording, frames: Sequence[tuple[float, str]]
) -> dict[tuple[str, PriceKind], Stream]:
    """The frames of each (instrument, kind) and the quotes a fresh parser makes of them."""
    streams: dict[tuple[str, PriceKind], Stream] = {}
    for ts, data in frames:
        try:
            message = json.loads(data)
        except json.JSONDecodeError:
            continue  # OKX's "pong" and the like: not a price stream
        channel = recording.channel(message) if isinstance(message, dict) else None
        if channel is not None:
            streams.setdefault((channel[1], channel[0]), Stream()).frames.append((ts, data))
    start = frames[0][0]
    for (instrument, kind), stream in streams.items():
        parser = VENUES[recording.venue].new_parser()
        live = []
        for ts, data in stream.frames:
            quotes = [
                q
                for q in parser.parse(data, ts)
                if isinstance(q, Quote) and q.kind is kind and q.instrument == instrument
            ]
            stream.quotes.extend(quotes)
            if quotes and min(q.ts for q in quotes) < start - BACKLOG_S:
                stream.backlog_frames += 1
            else:
                live.append((ts, data))
                stream.live_quotes.extend(quotes)
        stream.frames = live
    return streams


def parse_us(venue: str, frames: Sequence[tuple[float, str]]) -> float | None:
    """Median over ``PASSES`` passes of the parse CPU per frame, in microseconds."""
    if not frames:
        return None
    repeat = math.ceil(MIN_PARSES / len(frames))
    work = list(frames) * repeat
    spec = VENUES[venue]
    samples = []
    for _ in range(PASSES):
        parser = spec.new_parser()
        start = time.process_time()
        for ts, data in work:
            parser.parse(data, ts)
        samples.append((time.process_time() - start) / len(work) * 1e6)
    return statistics.median(samples)


def noise(prices: Sequence[float]) -> tuple[float | None, float | None, int]:
    """(per-tick noise std in bp, share of zero returns, returns) of a price sequence.

    The noise variance is minus the first-order autocovariance of tick log returns (zero
    mean), floored at 0; None below 3 returns.
    """
    r = np.diff(np.log(np.asarray(prices, dtype=np.float64)))
    if len(r) < 3:
        return None, float(np.mean(r == 0.0)) if len(r) else None, len(r)
    autocovariance = float(np.mean(r[1:] * r[:-1]))
    omega2 = -autocovariance if autocovariance < 0.0 else 0.0
    return math.sqrt(omega2) * 1e4, float(np.mean(r == 0.0)), len(r)


def smallest_change(prices: Sequence[float]) -> float | None:
    """The smallest non-zero absolute change between consecutive prices."""
    steps = np.abs(np.diff(np.asarray(prices, dtype=np.float64)))
    steps = steps[steps > 1e-12 * max(prices, default=1.0)]
    return float(steps.min()) if len(steps) else None


def stream_stats(
    venue: str, instrument: str, kind: PriceKind, stream: Stream, duration_s: float
) -> StreamStats:
    """The figures of one stream over the connection's span ``duration_s``."""
    prices = [q.price for q in stream.quotes]
    price = statistics.median(prices) if prices else math.nan
    step = smallest_change(prices)
    noise_bp, zero_share, returns = noise(prices)
    return StreamStats(
        venue=venue,
        instrument=instrument,
        kind=kind.value,
        duration_s=duration_s,
        frames_per_s=len(stream.frames) / duration_s,
        quotes_per_s=len(stream.live_quotes) / duration_s,
        parse_us=parse_us(venue, stream.frames),
        price=price,
        tick_bp=step / price * 1e4 if step is not None else None,
        noise_bp=noise_bp,
        zero_share=zero_share,
        returns=returns,
    )


def book(trade: Stream, mid: Stream) -> Book:
    """The tick of an instrument's book from its two streams.

    The smallest non-zero trade change or twice the smallest mid change, whichever is
    smaller (a mid moves by half a tick when one side of the book moves).
    """
    trades, mids = [q.price for q in trade.quotes], [q.price for q in mid.quotes]
    if not trades and not mids:
        return Book(None, "")
    price = statistics.median(trades + mids)
    trade_step, mid_step = smallest_change(trades), smallest_change(mids)
    steps = [s for s in (trade_step, 2 * mid_step if mid_step else None) if s is not None]
    if steps:
        return Book(min(steps) / price * 1e4, "changes")
    return Book(decimal_grid(trades + [2 * m for m in mids]) / price * 1e4, "decimals")


def decimal_grid(prices: Sequence[float]) -> float:
    """The largest power of ten, at most the smallest price, of which every price is a multiple."""
    top = math.floor(math.log10(min(prices)))
    for exponent in range(top, top - 16, -1):
        grid = 10.0**exponent
        if all(abs(p / grid - round(p / grid)) < 1e-6 for p in prices):
            return grid
    return 10.0 ** (top - 16)


def measure_recording(recording: Recording) -> tuple[list[StreamStats], dict[str, Book], float]:
    """Stream figures, books per instrument and the recorded span of one venue."""
    frames = load_frames(recording)
    duration_s = frames[-1][0] - frames[0][0]
    streams = split_streams(recording, frames)
    stats = [
        stream_stats(recording.venue, instrument, kind, stream, duration_s)
        for (instrument, kind), stream in sorted(streams.items())
    ]
    books = {}
    for instrument in sorted({instrument for instrument, _ in streams}):
        trade = streams.get((instrument, PriceKind.TRADE), Stream())
        mid = streams.get((instrument, PriceKind.MID), Stream())
        books[instrument] = book(trade, mid)
    return stats, books, duration_s


def recorded_path() -> Path:
    """Where the recordings are read from."""
    return RECORDED_DIR
