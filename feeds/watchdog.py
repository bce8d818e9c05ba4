"""The staleness watchdog: finds silent instruments and asks their connections to resubscribe.

Once a period (a second) it checks every source of the router: newly stale ones are logged, and
the :class:`~feeds.resubscribe.Resubscriber` decides which quiet instruments are due a
resubscribe request (a growing backoff per instrument, reset by live data). The request goes
to the connection that carries the instrument, which sends it when the venue's request budget
has room. The clock is injected, so tests can run it on an accelerated loop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

import structlog

from feeds.resubscribe import ResubscribePolicy, Resubscriber
from feeds.router import Router, Source, SourceKey
from feeds.session import Connection

log = structlog.get_logger("riskmon.feeds")


@dataclass(slots=True)
class Watchdog:
    """Staleness checks and resubscribe requests for every source of a router.

    Args:
        router: the sources and their freshness.
        owners: (feed index, native instrument) -> the connection carrying it.
        policy: backoff between resubscribe requests of one instrument.
        clock: monotonic seconds, the same clock the router's ``mono`` comes from.
        period_s: seconds between checks.
    """

    router: Router
    owners: Mapping[SourceKey, Connection]
    policy: ResubscribePolicy = field(default_factory=ResubscribePolicy)
    clock: Callable[[], float] = time.monotonic
    period_s: float = 1.0
    resubscriber: Resubscriber[SourceKey] = field(init=False)

    def __post_init__(self) -> None:
        self.resubscriber = Resubscriber[SourceKey](self.policy)

    async def run(self) -> None:
        """Check every ``period_s`` until cancelled."""
        while True:
            await asyncio.sleep(self.period_s)
            self.check(self.clock())

    def check(self, now: float) -> list[Source]:
        """Log newly stale sources and request the due resubscriptions; return those sources."""
        newly, _ = self.router.check(now)
        for src in newly:
            log.warning(
                "feed_stale",
                venue=src.venue,
                instrument=src.instrument,
                symbol=src.symbol,
                silent_s=round(now - src.last_seen, 1),
            )
        by_key = {(src.feed, src.instrument): src for src in self._sources()}
        due = self.resubscriber.due(((key, src.stale) for key, src in by_key.items()), now)
        for key in due:
            self._request(key)
        return [by_key[key] for key in due if key in by_key]

    def _sources(self) -> Iterator[Source]:
        for group in self.router.sources.values():
            yield from group

    def _request(self, key: SourceKey) -> None:
        conn = self.owners.get(key)
        if conn is not None:
            conn.request_resubscribe([key[1]])
