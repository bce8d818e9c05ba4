"""Vol-of-vol from mark IVs: the estimate, its guards, and its journey through the engine."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from monitor.config.schema import Config
from monitor.engine import Engine
from monitor.estimation.volofvol import FORGET_HALFLIVES, MAX_LOG_CHANGE, SAMPLE_S, IvHistory
from monitor.risk.book import OptionMark
from monitor.rules import RuleEngine
from service.checkpoint import capture, read_checkpoint, restore, write_checkpoint

YEAR = 365 * 86_400.0
T0 = 1_780_000_000.0
DAY = 86_400.0


def iv_path(vol_of_vol: float, seconds: int, step: float, seed: int) -> np.ndarray:
    """Mark IVs every ``step`` seconds: a driftless Brownian log IV from 60%."""
    rng = np.random.default_rng(seed)
    steps = rng.normal(0.0, vol_of_vol * math.sqrt(step / YEAR), int(seconds / step))
    return np.asarray(0.6 * np.exp(np.cumsum(steps)))


def test_vol_of_vol_of_a_brownian_log_iv_is_recovered() -> None:
    """90% a year, marks every second for two days, sampled once a minute: within 5%."""
    history = IvHistory(halflife_s=DAY, min_observations=30)
    ivs = iv_path(0.9, 2 * 86_400, 1.0, seed=1)
    for k, iv in enumerate(ivs):
        history.update(T0 + k, {"A": OptionMark(float(iv))})
    (variance,) = history.annual_variance().values()
    assert math.sqrt(variance) == pytest.approx(0.9, rel=0.05)


def test_samples_closer_than_a_minute_and_rounding_noise_are_not_measured() -> None:
    """IV jittering +-0.01 points every second around a flat level reads close to nothing.

    Sampled every second, the jitter alone would read sqrt((2e-4 / 0.6)^2 * YEAR) ~ 190%.
    """
    history = IvHistory(halflife_s=DAY, min_observations=30)
    for k in range(6 * 3600):
        history.update(T0 + k, {"A": OptionMark(0.6 + (0.0001 if k % 2 else -0.0001))})
    (variance,) = history.annual_variance().values()
    assert math.sqrt(variance) < 0.1


def test_a_bad_print_is_clipped_and_warm_up_withholds_the_estimate() -> None:
    history = IvHistory(halflife_s=DAY, min_observations=30)
    ivs = [0.6] * 29 + [60.0] + [0.6] * 10  # one print 100x: clipped to a doubling
    for k, iv in enumerate(ivs):
        history.update(T0 + k * SAMPLE_S, {"A": OptionMark(iv)})
        if k < 30:
            assert history.annual_variance() == {}  # 29 changes: not yet
    (variance,) = history.annual_variance().values()
    elapsed = (len(ivs) - 1) * SAMPLE_S
    # two clipped changes (up, then down) of ln 2, nearly undecayed over 39 minutes
    assert variance == pytest.approx(2 * MAX_LOG_CHANGE**2 / elapsed * YEAR, rel=0.02)


def test_unmarked_instruments_are_forgotten_and_bad_ivs_ignored() -> None:
    history = IvHistory(halflife_s=3600.0, min_observations=2)
    history.update(T0, {"A": OptionMark(0.5), "B": OptionMark(float("nan"))})
    history.update(T0 + 60, {"A": OptionMark(0.5), "B": OptionMark(0.0)})
    assert set(history.export_state()) == {"A"}
    history.update(T0 + FORGET_HALFLIVES * 3600.0 + 61, {"C": OptionMark(0.7)})
    assert set(history.export_state()) == {"C"}


OPTION_BOOK = """
[universe]
symbols = ["BTCUSD"]

[estimator]
halflife = "10m"
slow_halflife = "6h"
min_observations = 10

[risk]
horizon = "1d"
confidence = [0.99]
distribution = "normal"
vol_of_vol = 0.0

[[accounts]]
name = "calls"

[[accounts.positions]]
instrument = "BTC-25DEC26-100000-C"
kind = "option"
underlying = "BTCUSD"
contracts = 1
settlement = "linear"
iv = 0.6

[[accounts.positions]]
instrument = "BTCUSDT"
kind = "linear"
underlying = "BTCUSD"
contracts = -0.5
entry_price = 100000
"""


def _run(engine: Engine, ivs: np.ndarray, start: float) -> list[float | None]:
    """One tick and one snapshot a minute, the option marked at each; the 99% VaR."""
    rng = np.random.default_rng(int(start) % 1000)
    out = []
    mark: dict[str, OptionMark] = {}
    engine.marks = lambda: mark
    for k, iv in enumerate(ivs):
        t = start + 60.0 * k
        mark["BTC-25DEC26-100000-C"] = OptionMark(float(iv))
        engine.on_tick(t, "BTCUSD", 100_000.0 * math.exp(rng.normal(0.0, 1e-3)))
        account = engine.snapshot(t).account("calls")
        assert account is not None
        out.append(account.tails[0].var)
    return out


def test_the_engine_feeds_mark_iv_history_to_the_option_var_and_checkpoints_it(
    make_config: Callable[..., Config], tmp_path: Path
) -> None:
    """Moving marks raise a long-vega book's VaR above held IVs; a restore keeps the history."""
    config = make_config(base=OPTION_BOOK)
    held = _run(Engine(config), np.full(120, 0.6), T0)
    engine = Engine(config)
    moving = _run(engine, iv_path(1.5, 120 * 60, 60.0, seed=3), T0)
    assert held[-1] is not None
    assert moving[-1] is not None
    assert moving[-1] > 2.0 * held[-1]
    path = tmp_path / "checkpoint"
    write_checkpoint(path, capture(engine, RuleEngine((), []), None))
    restored = Engine(config)
    restore(read_checkpoint(path), restored, RuleEngine((), []))
    assert restored.export_state().iv_history == engine.export_state().iv_history
    more = iv_path(1.5, 10 * 60, 60.0, seed=4)
    t_next = T0 + 120 * 60.0
    assert _run(restored, more, t_next) == _run(engine, more, t_next)
