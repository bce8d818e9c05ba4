"""From venue quotes to engine ticks: symbol mapping, venue failover and staleness.

Each ``[[feeds]]`` instrument is a *source* of one engine symbol (its alias, or its native
name). Sources of the same engine symbol are ranked in config order; the first source that is
fresh (a quote of the configured price kind within ``stale_after`` on the monotonic clock)
prices the symbol, and the others stand by. When the primary goes silent the next fresh source
takes over at once; when it comes back it takes over again. A switch between venues can show
the basis between them (e.g. USD vs USDT) as one return.

Staleness is tracked per instrument, so one silent symbol on a busy connection is noticed.
Time is passed in (``mono``, and the wall clock ``wall``), so this module is pure and testable
without an event loop.

Values are checked here, where the receive time is known (``monitor.guard.check_receive_time``):
a venue time more than ``max_clock_skew_s`` ahead of the wall clock is replaced by it and
counted (``clock_skew``); one further behind than the feed's ``stale_after`` is dropped as
``out_of_order`` (a 1970 stamp, old trades replayed after a subscription); a NaN or
non-positive price is dropped (``not_a_number``, ``non_positive``); a quote of an instrument no
feed names is dropped (``unknown_symbol``). A dropped quote does not make its source fresh, so a
venue sending only such values goes stale and the next feed stands in. Rejections are counted
in ``rejected`` by (venue, reason); the engine counts what it rejects later (time order per
symbol, bad prints).

Only live data makes an instrument fresh: a quote refreshes its source when its (checked)
event time is newer than the newest seen from that source. Snapshot quotes, the state a venue
replays after a (re)subscription, never refresh; they reach the engine only when newer than
what the source already delivered (else they are counted as ``replayed`` and dropped), so a
resubscription of a quiet instrument neither marks it fresh nor feeds the engine old trades.
"""

from __future__ import annotations

import math
from collections import Counter, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from feeds.events import FeedEvent, OptionQuote, PriceKind, Quote, Status
from monitor.config.schema import FeedConfig
from monitor.guard import NON_POSITIVE, NOT_A_NUMBER, UNKNOWN_SYMBOL, check_receive_time
from monitor.model import Tick

SourceKey = tuple[int, str]
"""(index of the [[feeds]] entry, native instrument)."""


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

    def observe(self, snapshot: bool, event_ts: float, mono: float) -> bool:
        """Note a quote of this source received at ``mono``; whether it goes to the engine.

        ``event_ts`` is the quote's checked event time (a time too far ahead of the receive
        time is already replaced by it, so one bad stamp cannot block later refreshes). Live
        quotes always go on (the engine judges their order); they refresh the source only when
        newer than any seen. Snapshot quotes never refresh it, and go on only when newer than
        any seen.
        """
        newer = event_ts > self.last_event_ts
        if newer:
            self.last_event_ts = event_ts
        if snapshot:
            self.replayed += not newer
            return newer
        if newer:
            self.last_seen = mono
            self.stale = False
        return True


@dataclass(frozen=True, slots=True)
class TickColumns:
    """Ticks as columns, in arrival order; ``venue``: the venue that priced each tick."""

    ts: list[float]
    symbol: list[str]
    price: list[float]
    venue: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ts)


class TickBuffer:
    """The bounded buffer between feeds and engine.

    Overflow policy: when full, the oldest ticks are dropped and counted. Dropping a tick only
    coarsens the sampling of its symbol (the estimator works on price levels), so no return is
    lost or biased; memory stays bounded when the engine falls behind.

    Ticks are kept as columns (time, symbol, price, venue), so that the live path creates no
    object per tick beyond the venue's quote, and the engine gets arrays without a pass over
    tick objects.
    """

    def __init__(self, max_ticks: int) -> None:
        self._ts: deque[float] = deque(maxlen=max_ticks)
        self._symbol: deque[str] = deque(maxlen=max_ticks)
        self._price: deque[float] = deque(maxlen=max_ticks)
        self._venue: deque[str] = deque(maxlen=max_ticks)
        self.dropped = 0
        self.pushed = 0
        self.oldest_mono: float | None = None

    def append(
        self, ts: float, symbol: str, price: float, mono: float | None = None, venue: str = ""
    ) -> None:
        """Append a tick received at monotonic time ``mono``, dropping the oldest when full."""
        if len(self._ts) == self._ts.maxlen:
            self.dropped += 1
        elif not self._ts:
            self.oldest_mono = mono
        self._ts.append(ts)
        self._symbol.append(symbol)
        self._price.append(price)
        self._venue.append(venue)
        self.pushed += 1

    def push(self, tick: Tick, mono: float | None = None) -> None:
        """:meth:`append` for a :class:`Tick`."""
        self.append(tick.ts, tick.symbol, tick.price, mono)

    def drain_columns(self) -> tuple[TickColumns, float | None]:
        """Everything buffered as columns, oldest first, and when the oldest was received."""
        columns = TickColumns(
            list(self._ts), list(self._symbol), list(self._price), list(self._venue)
        )
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
        self._venue.clear()
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
        max_clock_skew_s: how far ahead of the wall clock a venue time may be.

    Attributes:
        rejected: quotes dropped (or, for ``clock_skew``, re-stamped) by (venue, reason).
    """

    feeds: Sequence[FeedConfig]
    buffer: TickBuffer
    start_mono: float
    max_clock_skew_s: float = 2.0
    sources: dict[tuple[str, str], list[Source]] = field(init=False)
    by_symbol: dict[str, list[Source]] = field(init=False)
    standby: Counter[str] = field(default_factory=Counter, init=False)
    statuses: Counter[tuple[str, str]] = field(default_factory=Counter, init=False)
    options: dict[str, OptionQuote] = field(default_factory=dict, init=False)
    rejected: Counter[tuple[str, str]] = field(default_factory=Counter, init=False)

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

    def on_events(
        self, venue: str, events: list[FeedEvent], mono: float, wall: float | None = None
    ) -> None:
        """Route one frame's events; quotes of the configured kind become ticks.

        Args:
            venue: the frame's venue.
            events: what its parser returned.
            mono: monotonic receive time (freshness).
            wall: the wall clock now, which venue times are checked against; None: each
                quote's own receive time (the demo passes the simulator's clock).
        """
        for event in events:
            if isinstance(event, Quote):
                self._quote(event, mono, event.recv_ts if wall is None else wall)
            elif isinstance(event, OptionQuote):
                self.options[event.instrument] = event
            elif isinstance(event, Status):
                self.statuses[(venue, event.kind.value)] += 1

    def _quote(self, quote: Quote, mono: float, wall: float) -> None:
        group = self.sources.get((quote.venue, quote.instrument))
        if group is None:
            self.rejected[(quote.venue, UNKNOWN_SYMBOL)] += 1
            return
        for src in group:
            if src.kind is not quote.kind:
                continue
            ts = self._checked_time(quote, wall, src.stale_after_s)
            if ts is None:
                return
            if not src.observe(quote.snapshot, ts, mono):
                continue
            # a fresh first-ranked source is active: no ranking to walk
            fresh = mono - src.last_seen <= src.stale_after_s
            if (src.primary and fresh) or self.active(src.symbol, mono) is src:
                self.buffer.append(ts, src.symbol, quote.price, mono, quote.venue)
                src.routed += 1
            else:
                self.standby[src.symbol] += 1

    def _checked_time(self, quote: Quote, wall: float, max_age_s: float) -> float | None:
        """The quote's event time to use, or None when the quote is dropped (both counted)."""
        if not math.isfinite(quote.price):
            self.rejected[(quote.venue, NOT_A_NUMBER)] += 1
            return None
        if quote.price <= 0.0:
            self.rejected[(quote.venue, NON_POSITIVE)] += 1
            return None
        ts, reason = check_receive_time(quote.ts, wall, self.max_clock_skew_s, max_age_s)
        if reason is not None:
            self.rejected[(quote.venue, reason)] += 1
        return ts

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
