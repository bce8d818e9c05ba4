"""Request budgets and per-venue limits: sliding windows, shared groups, the documented figures."""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from feeds import limits
from feeds.budget import MARGIN_S, RequestBudget, VenueBudget, venue_budgets
from feeds.limits import VenueLimits, Window
from feeds.registry import VENUES


def in_window(times: list[float], end: float, seconds: float) -> int:
    """Oracle: requests inside the window (end - seconds, end]."""
    return sum(1 for t in times if end - seconds < t <= end)


def test_requests_fit_until_the_window_is_full_then_wait_for_the_oldest() -> None:
    """5 per second: five go at once, the sixth waits until the first leaves the window."""
    budget = RequestBudget([Window(5, 1.0)])
    assert budget.capacity == 5
    for n in range(5):
        assert budget.wait_s(1, 10.0 + n * 0.1) == 0.0
        budget.spend(1, 10.0 + n * 0.1)
    # the request of 10.0 leaves at 11.0; a margin covers the network's jitter
    assert budget.wait_s(1, 10.45) == pytest.approx(0.55 + MARGIN_S)
    assert budget.wait_s(2, 10.45) == pytest.approx(0.65 + MARGIN_S)  # 10.0 and 10.1 gone
    assert budget.wait_s(1, 11.0 + MARGIN_S) == 0.0
    assert budget.used(10.45) == [5]


def test_the_tightest_of_several_windows_decides() -> None:
    """4/s and 10 per minute: the minute window binds once ten are spent."""
    budget = RequestBudget([Window(4, 1.0), Window(10, 60.0)])
    now = 0.0
    for _ in range(10):
        now += budget.wait_s(1, now)
        budget.spend(1, now)
    assert now == pytest.approx(2.0 + 2 * MARGIN_S)  # 4 at 0, 4 a second later, 2 after that
    assert budget.wait_s(1, now) == pytest.approx(60.0 + MARGIN_S - now)


def test_more_requests_than_a_window_holds_can_never_fit() -> None:
    """Asking for more than a window's count is a bug in the caller: ValueError."""
    with pytest.raises(ValueError, match="never fit"):
        RequestBudget([Window(2, 1.0)]).wait_s(3, 0.0)
    with pytest.raises(ValueError, match="count >= 2"):
        Window(1, 1.0)


def test_no_windows_means_no_limit() -> None:
    """An unlimited budget never waits and has no capacity bound."""
    budget = RequestBudget()
    budget.spend(1000, 0.0)
    assert (budget.wait_s(10**6, 0.0), budget.capacity) == (0.0, None)


@settings(max_examples=200, deadline=None)
@given(
    windows=st.lists(
        st.builds(Window, st.integers(2, 6), st.floats(0.1, 5.0)), min_size=1, max_size=3
    ),
    steps=st.lists(st.tuples(st.floats(0.0, 3.0), st.integers(1, 2)), max_size=60),
)
@example(windows=[Window(2, 5.0)], steps=[(2.0, 1), (0.11301157678921417, 2)])  # float noise
def test_waiting_as_told_never_exceeds_any_window(
    windows: list[Window], steps: list[tuple[float, int]]
) -> None:
    """Whatever the request pattern, a client that waits wait_s() never breaks a limit.

    Checked against the full history (the budget only keeps each window's last ``count``).
    """
    budget, now, sent = RequestBudget(windows), 0.0, []
    for gap, n in steps:
        now += gap
        now += budget.wait_s(n, now)
        assert budget.wait_s(n, now) == 0.0
        budget.spend(n, now)
        sent.extend([now] * n)
        for window in windows:
            assert in_window(sent, now, window.seconds) <= window.count


def test_okx_budget_allows_480_requests_per_hour_per_connection() -> None:
    """A client hammering OKX gets 480 requests into any hour, not one more."""
    budget = RequestBudget(limits.OKX.requests_per_connection)
    now, sent = 0.0, []
    while now < 7200.0:
        now += budget.wait_s(1, now)
        budget.spend(1, now)
        sent.append(now)
    assert in_window(sent, 3599.0, 3600.0) == 480
    assert max(in_window(sent, t, 3600.0) for t in sent) == 480


def test_venue_groups_share_one_budget() -> None:
    """Bybit linear and spot share a host, so one per-IP budget; other venues have their own."""
    budgets = venue_budgets([spec.limits for spec in VENUES.values()])
    assert VENUES["bybit"].limits.group == VENUES["bybit-spot"].limits.group == "bybit"
    assert set(budgets) == {spec.limits.group for spec in VENUES.values()}
    assert len(budgets) == len(VENUES) - 1
    shared = budgets["coinbase"]
    assert isinstance(shared, VenueBudget)
    assert shared.requests.capacity == 8  # 8 unauthenticated messages per second per IP
    assert shared.connects.capacity == 8


@pytest.mark.parametrize(
    ("venue", "streams", "per_connection", "connects"),
    [
        ("binance", 1024, Window(4, 1.0), Window(300, 300.0)),
        ("binance-usdm", 200, Window(8, 1.0), Window(300, 300.0)),
        ("okx", 200, Window(480, 3600.0), Window(3, 1.0)),
        ("bybit", 200, Window(10, 1.0), Window(500, 300.0)),
        ("kraken", 100, Window(10, 10.0), Window(150, 600.0)),
    ],
)
def test_documented_figures(
    venue: str, streams: int, per_connection: Window, connects: Window
) -> None:
    """The table of feeds/limits.py, as the venues carry it."""
    venue_limits = VENUES[venue].limits
    assert venue_limits.streams_per_connection == streams
    assert venue_limits.requests_per_connection == (per_connection,)
    assert venue_limits.connects_per_ip == (connects,)


def test_every_venue_has_limits_and_an_unsubscribe_fits_with_its_subscribe() -> None:
    """No venue is left unlimited, and every window takes a resubscribe pair at once."""
    for spec in VENUES.values():
        assert spec.limits is not limits.UNLIMITED
        for window in (*spec.limits.requests_per_connection, *spec.limits.requests_per_ip):
            assert window.count >= 2
    assert VenueLimits("x", 1).requests_per_connection == ()
