"""Frozen figures are not ready: event clock drift and symbols whose ticks are all rejected."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from monitor.config.schema import Config
from service.daemon import Daemon
from tests.conftest import BASE_TOML

T0 = 1_750_000_000.0
LIVE = """
[live]
max_clock_drift = "30s"
rejected_streak = 5
"""


class Wall:
    """A wall clock the test sets."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _daemon(make_config: Callable[..., Config], wall: Wall) -> Daemon:
    daemon = Daemon(make_config(LIVE), wall=wall)
    rng = np.random.default_rng(1)
    for step in range(40):
        prices = 100.0 * np.exp(rng.normal(0.0, 0.001, 3))
        daemon.engine.ingest(np.full(3, T0 + step), ["AAA", "BBB", "CCC"], prices)
    daemon.latest = daemon.engine.snapshot(T0 + 40)
    return daemon


def test_an_event_clock_far_from_the_wall_clock_is_not_ready(
    make_config: Callable[..., Config],
) -> None:
    """Drift within the limit: no reason; beyond it, either way: a reason saying which way."""
    wall = Wall(T0 + 50)
    daemon = _daemon(make_config, wall)
    assert daemon.clock_drift() == 10.0
    assert daemon.frozen_figures() == []
    wall.now = T0 + 100
    assert daemon.frozen_figures() == ["event clock 60 s behind the wall clock (limit 30 s)"]
    wall.now = T0 + 20
    assert daemon.frozen_figures() == []
    wall.now = T0 - 60
    assert daemon.frozen_figures() == ["event clock 100 s ahead of the wall clock (limit 30 s)"]


def test_a_symbol_whose_ticks_are_all_rejected_is_not_ready(
    make_config: Callable[..., Config],
) -> None:
    """Five bad prints of AAA in a row: not ready, naming AAA; one good tick makes it ready."""
    wall = Wall(T0 + 45)
    daemon = _daemon(make_config, wall)
    price = float(daemon.latest.price[0]) if daemon.latest is not None else 100.0
    for n in range(4):
        daemon.engine.ingest(np.array([T0 + 41 + n]), ["AAA"], np.array([-1.0]), "v")
    assert daemon.rejecting() == []
    daemon.engine.ingest(np.array([T0 + 45]), ["AAA"], np.array([0.0]), "v")
    assert daemon.rejecting() == ["AAA"]
    assert "every recent tick rejected for AAA" in daemon.not_ready(0.0)
    assert daemon.rejected()[("v", "non_positive")] == 5
    daemon.engine.ingest(np.array([T0 + 46]), ["AAA"], np.array([price]), "v")
    assert daemon.rejecting() == []


WARM_PROBE = """
import sys
from monitor.config.loading import load_config
from monitor.estimation import preaveraged
from service.warmup import warm_kernels
if sys.argv[2] == "warm":
    warm_kernels(load_config(sys.argv[1]))
close, batch = preaveraged._fast_kernels()
print(len(close.signatures), len(batch.signatures))
"""


@pytest.mark.parametrize(("mode", "expected"), [("warm", "1 1"), ("cold", "0 0")])
def test_kernels_are_compiled_before_the_event_loop_runs(
    tmp_path: Path, mode: str, expected: str
) -> None:
    """warm_kernels leaves the engine's kernels compiled (a fresh process has none)."""
    config = tmp_path / "riskmon.toml"
    config.write_text(textwrap.dedent(BASE_TOML))
    out = subprocess.run(
        [sys.executable, "-c", WARM_PROBE, str(config), mode],
        capture_output=True, text=True, check=True, timeout=120,
    ).stdout.split()  # fmt: skip
    assert " ".join(out[-2:]) == expected  # after any log line
