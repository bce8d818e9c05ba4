"""Resubscription of quiet instruments: backoff per instrument, reset by live data, watchdog."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from feeds.events import PriceKind, Quote
from feeds.resubscribe import ResubscribePolicy, Resubscriber
from feeds.router import Router, TickBuffer
from feeds.session import Connection
from feeds.venues.okx import OKX
from feeds.watchdog import Watchdog
from monitor.config.schema import Config

MIDDLE = ResubscribePolicy(rand=lambda: 0.5)  # no jitter: delays are exactly 3, 6, 12, ...


def requests_while_quiet(policy: ResubscribePolicy, seconds: float) -> list[float]:
    """Times of the requests for one instrument quiet for ``seconds``, checked every second."""
    resubscriber = Resubscriber[str](policy)
    return [float(t) for t in range(int(seconds) + 1) if resubscriber.due([("X", True)], t)]


def test_delays_double_from_3_s_to_a_10_minute_cap() -> None:
    """3, 6, 12, ... 384, then 600 s for ever (and no overflow after thousands of requests)."""
    assert [MIDDLE.delay_s(n) for n in range(10)] == [3, 6, 12, 24, 48, 96, 192, 384, 600, 600]
    assert MIDDLE.delay_s(10_000) == 600.0


def test_jitter_stays_within_20_percent_and_under_the_cap() -> None:
    """rand 0 and 1 bound the jitter: 2.4..3.6 s for the first delay; the cap holds."""
    low, high = ResubscribePolicy(rand=lambda: 0.0), ResubscribePolicy(rand=lambda: 0.999999)
    assert low.delay_s(0) == pytest.approx(2.4)
    assert high.delay_s(0) == pytest.approx(3.6, rel=1e-5)
    assert high.delay_s(20) == 600.0
    rng = random.Random(3)
    seeded = ResubscribePolicy(rand=rng.random)
    assert all(0.8 * 48 <= seeded.delay_s(4) <= 1.2 * 48 for _ in range(200))


@pytest.mark.parametrize(
    "bad",
    [
        {"initial_s": 0.0},
        {"initial_s": 700.0},
        {"factor": 0.5},
        {"jitter": 1.0},
    ],
)
def test_invalid_policies_are_rejected(bad: dict[str, float]) -> None:
    """A policy that would spin or shrink is refused at construction."""
    with pytest.raises(ValueError, match=r"need|jitter"):
        ResubscribePolicy(**bad)  # type: ignore[arg-type]


def test_a_quiet_instrument_is_retried_at_0_3_9_21_s_and_not_every_30_s() -> None:
    """Ten minutes of silence: 8 requests (0, 3, 9, 21, 45, 93, 189, 381 s), an hour: 13."""
    assert requests_while_quiet(MIDDLE, 600) == [0, 3, 9, 21, 45, 93, 189, 381]
    assert len(requests_while_quiet(MIDDLE, 3600)) == 13  # 120 at the old fixed 30 s
    jittered = requests_while_quiet(ResubscribePolicy(rand=random.Random(1).random), 3600)
    assert 12 <= len(jittered) <= 14


def test_live_data_resets_the_backoff_after_a_healthy_minute() -> None:
    """Fresh for 60 s resets to 3 s; fresh for less keeps the grown backoff (a thin market)."""
    resubscriber = Resubscriber[str](MIDDLE)
    for t in range(30):
        resubscriber.due([("X", True)], float(t))
    assert resubscriber.attempts("X") == 4  # 0, 3, 9, 21
    for t in range(30, 50):  # a print: fresh for 20 s only
        assert resubscriber.due([("X", False)], float(t)) == []
    assert resubscriber.due([("X", True)], 50.0) == ["X"]  # 21 + 24 = 45 <= 50: due
    assert resubscriber.attempts("X") == 5
    assert resubscriber.due([("X", True)], 53.0) == []  # next after 48 s, not 3 s
    for t in range(60, 121):
        resubscriber.due([("X", False)], float(t))
    assert resubscriber.attempts("X") == 0  # fresh for a minute: reset
    again = [t for t in range(200, 222) if resubscriber.due([("X", True)], float(t))]
    assert again == [200, 203, 209, 221]


def test_instruments_back_off_independently() -> None:
    """A second instrument going quiet later starts its own backoff at 3 s."""
    resubscriber = Resubscriber[str](MIDDLE)
    due = {t: resubscriber.due([("A", True), ("B", t >= 10)], float(t)) for t in range(0, 25)}
    assert [t for t, keys in due.items() if "A" in keys] == [0, 3, 9, 21]
    assert [t for t, keys in due.items() if "B" in keys] == [10, 13, 19]


FEEDS = """
[[feeds]]
venue = "okx"
symbols = ["BTC-USDT", "ETH-USDT"]
price = "trade"
stale_after = "5s"
"""


def test_watchdog_requests_resubscribes_on_the_backoff_and_stops_on_live_data(
    make_config: Callable[..., Config],
) -> None:
    """ETH quiet from the start: requests at 6 s, 9 s, 15 s; BTC trades throughout: none.

    Then ETH trades again from 20 s: fresh, no more requests.
    """
    config = make_config(FEEDS, base='[universe]\nsymbols = ["BTC-USDT", "ETH-USDT"]\n')
    router = Router(config.feeds, TickBuffer(1000), start_mono=0.0)
    [plan] = OKX.plan(OKX.default_url, ["BTC-USDT", "ETH-USDT"], PriceKind.TRADE)
    conn = Connection(OKX, plan, PriceKind.TRADE, router.on_events)
    watchdog = Watchdog(router, {(0, "BTC-USDT"): conn, (0, "ETH-USDT"): conn}, MIDDLE)
    requested = []
    for t in range(1, 31):
        trade = Quote("okx", "BTC-USDT", PriceKind.TRADE, 100.0, 1000.0 + t, 1000.0 + t)
        router.on_events("okx", [trade], float(t))
        if t >= 20:
            eth = Quote("okx", "ETH-USDT", PriceKind.TRADE, 10.0, 1000.0 + t, 1000.0 + t)
            router.on_events("okx", [eth], float(t))
        for src in watchdog.check(float(t)):
            requested.append((t, src.instrument))
    assert requested == [(6, "ETH-USDT"), (9, "ETH-USDT"), (15, "ETH-USDT")]
    assert conn.stats.resubscribe_pending == 1  # the session sends it when the socket runs
