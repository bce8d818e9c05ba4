"""From venue quotes to engine ticks: symbol mapping, venue failover and staleness.

Each ``[[feeds]]`` instrument is a *source* of one engine symbol (its alias, or its native
name). Sources of the same engine symbol are ranked in config order; the first source that is
fresh (a quote of the configured price kind within ``stale_after`` on the monotonic clock)
prices the symbol, and the others stand by. When the primary goes silent the next fresh source
takes over at once; when it comes back it takes over again. A switch between venues can show
the basis between them (e.g. USD vs USDT) as one return.

Staleness is tracked per instrument, so one silent symbol on a busy connection is noticed.
Only live data makes an instrument fresh: a quote refreshes its source when its event time is
newer than the newest seen from that source (a venue's time more than ``MAX_AHEAD_S`` ahead of
the receive time counts as the receive time, so one bad stamp cannot block later refreshes).
Snapshot quotes, the state a venue replays after a (re)subscription, never refresh; they reach
the engine only when newer than what the source already delivered (else they are counted as
``replayed`` and dropped), so a resubscription of a quiet instrument neither marks it fresh nor
feeds the engine old trades.
Time is passed in (``mono``), so this module is pure and testable without an event loop.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from feeds.events import FeedEvent, OptionQuote, PriceKind, Quote, Status
from monitor.config import FeedConfig
from monitor.model import Tick

SourceKey = tuple[int, str]
"""(index of the [[feeds]] entry, native instrument)."""

MAX_AHEAD_S = 2.0
"""A venue time further ahead of the receive time is not trusted for ordering freshness."""


@dataclass(slots=True)
class Source:
    """One instrument of one feed entry.

    ``primary``: ranked first for its engine symbol, so it prices the symbol whenever it is
    fresh. ``routed``: ticks it delivered to the engine. ``last_event_ts``: the newest event
    time seen (Unix seconds). ``replayed``: snapshot quotes dropped as not newer than that.
    """

    feed: int
    venue: str
    instrument: str
    symbol: str
    kind: PriceKind
    stale_after_s: float
    last_seen: float
    stale: bool = False
    primary: bool = False
    routed: int = 0
    last_event_ts: float = float("-inf")
    replayed: int = 0

    def observe(self, quote: Quote, mono: float) -> bool:
        """Note a quote of this source received at ``mono``; whether it goes to the engine.

        Live quotes always go on (the engine judges their order); they refresh the source
        only when newer than any seen. Snapshot quotes never refresh it, and go on only when
        newer than any seen.
        """
        event_ts = min(quote.ts, quote.recv_ts + MAX_AHEAD_S)
        newer = event_ts > self.last_event_ts
        if newer:
            self.last_event_ts = event_ts
        if quote.snapshot:
            self.replayed += not newer
            return newer
        if newer:
            self.last_seen = mono
            self.stale = False
        return True


@dataclass(frozen=True, slots=True)
class TickColumns:
    """Ticks as three columns, in arrival order."""

    ts: list[float]
    symbol: list[str]
    price: list[float]

    def __len__(self) -> int:
        return len(self.ts)


class TickBuffer:
    """The bounded buffer between feeds and engine.

    Overflow policy: when full, the oldest ticks are dropped and counted. Dropping a tick only
    coarsens the sampling of its symbol (the estimator works on price levels), so no return is
    lost or biased; memory stays bounded when the engine falls behind.

    Ticks are kept as three columns, so that the live path creates no object per tick beyond
    the venue's quote, and the engine gets arrays without a pass over tick objects.
    """

    def __init__(self, max_ticks: int) -> None:
        self._ts: deque[float] = deque(maxlen=max_ticks)
        self._symbol: deque[str] = deque(maxlen=max_ticks)
        self._price: deque[float] = deque(maxlen=max_ticks)
        self.dropped = 0
        self.pushed = 0
        self.oldest_mono: float | None = None

    def append(self, ts: float, symbol: str, price: float, mono: float | None = None) -> None:
        """Append a tick received at monotonic time ``mono``, dropping the oldest when full."""
        if len(self._ts) == self._ts.maxlen:
            self.dropped += 1
        elif not self._ts:
            self.oldest_mono = mono
        self._ts.append(ts)
        self._symbol.append(symbol)
        self._price.append(price)
        self.pushed += 1

    def push(self, tick: Tick, mono: float | None = None) -> None:
        """:meth:`append` for a :class:`Tick`."""
        self.append(tick.ts, tick.symbol, tick.price, mono)

    def drain_columns(self) -> tuple[TickColumns, float | None]:
        """Everything buffered as columns, oldest first, and when the oldest was received."""
        columns = TickColumns(list(self._ts), list(self._symbol), list(self._price))
        oldest = self.oldest_mono
        self._clear()
        return columns, oldest

    def drain(self) -> tuple[list[Tick], float | None]:
        """Everything buffered, oldest first, and when the oldest was received; then empty."""
        ticks = [Tick(*row) for row in zip(self._ts, self._symbol, self._price, strict=True)]
        oldest = self.oldest_mono
        self._clear()
        return ticks, oldest

    def _clear(self) -> None:
        self._ts.clear()
        self._symbol.clear()
        self._price.clear()
        self.oldest_mono = None

    def __len__(self) -> int:
        return len(self._ts)


_KINDS = {"trade": PriceKind.TRADE, "mid": PriceKind.MID, "mark": PriceKind.MARK}


@dataclass(slots=True)
class Router:
    """Maps quotes to ticks and tracks every source's freshness.

    Args:
        feeds: the configured feeds, in priority order.
        buffer: where accepted ticks go.
        start_mono: monotonic time at start; silence is counted from it.
    """

    feeds: Sequence[FeedConfig]
    buffer: TickBuffer
    start_mono: float
    sources: dict[tuple[str, str], list[Source]] = field(init=False)
    by_symbol: dict[str, list[Source]] = field(init=False)
    standby: Counter[str] = field(default_factory=Counter, init=False)
    statuses: Counter[tuple[str, str]] = field(default_factory=Counter, init=False)
    options: dict[str, OptionQuote] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self.sources, self.by_symbol = {}, {}
        for index, feed in enumerate(self.feeds):
            for native in feed.symbols:
                src = Source(
                    index,
                    feed.venue,
                    native,
                    feed.engine_symbol(native),
                    _KINDS[feed.price],
                    float(feed.stale_after),
                    self.start_mono,
                )
                self.sources.setdefault((feed.venue, native), []).append(src)
                self.by_symbol.setdefault(src.symbol, []).append(src)
        for ranked in self.by_symbol.values():
            ranked[0].primary = True

    @property
    def routed(self) -> Counter[tuple[str, str]]:
        """Ticks routed to the engine by (venue, engine symbol)."""
        counts: Counter[tuple[str, str]] = Counter()
        for group in self.sources.values():
            for src in group:
                if src.routed:
                    counts[(src.venue, src.symbol)] += src.routed
        return counts

    def on_events(self, venue: str, events: list[FeedEvent], mono: float) -> None:
        """Route one frame's events; quotes of the configured kind become ticks."""
        for event in events:
            if isinstance(event, Quote):
                self._quote(event, mono)
            elif isinstance(event, OptionQuote):
                self.options[event.instrument] = event
            elif isinstance(event, Status):
                self.statuses[(venue, event.kind.value)] += 1

    def _quote(self, quote: Quote, mono: float) -> None:
        for src in self.sources.get((quote.venue, quote.instrument), ()):
            if src.kind is not quote.kind or not src.observe(quote, mono):
                continue
            # a fresh first-ranked source is active: no ranking to walk
            fresh = mono - src.last_seen <= src.stale_after_s
            if (src.primary and fresh) or self.active(src.symbol, mono) is src:
                self.buffer.append(quote.ts, src.symbol, quote.price, mono)
                src.routed += 1
            else:
                self.standby[src.symbol] += 1

    def active(self, symbol: str, mono: float) -> Source | None:
        """The source pricing ``symbol`` now: the first fresh one, else the latest seen."""
        ranked = self.by_symbol.get(symbol, [])
        for src in ranked:
            if mono - src.last_seen <= src.stale_after_s:
                return src
        return max(ranked, key=lambda s: s.last_seen, default=None)

    def check(self, mono: float) -> tuple[list[Source], list[Source]]:
        """Sources that went stale since the last check, and sources still stale."""
        newly: list[Source] = []
        still: list[Source] = []
        for group in self.sources.values():
            for src in group:
                if mono - src.last_seen > src.stale_after_s:
                    (still if src.stale else newly).append(src)
                    src.stale = True
        return newly, still

    def staleness(self, mono: float) -> Mapping[tuple[str, str], float]:
        """Seconds since each (venue, instrument) last delivered its configured price."""
        return {key: mono - max(s.last_seen for s in group) for key, group in self.sources.items()}

    def staleness_metric(self, labels: Mapping[str, str], mono: float) -> float | None:
        """``feed_staleness_seconds`` for rule labels ``venue`` and ``symbol`` (native name)."""
        group = self.sources.get((labels.get("venue", ""), labels.get("symbol", "")))
        if not group:
            return None
        return mono - max(s.last_seen for s in group)
