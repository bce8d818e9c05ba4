"""Shared fixtures: configs written to tmp_path, and the location of ../shared data.

Tests write nothing into the checkout: files go to ``tmp_path``, and Hypothesis keeps no
example database (it would be ``.hypothesis/`` in the working directory).
"""

from __future__ import annotations

import os
import tempfile
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis.configuration import set_hypothesis_home_dir

from monitor.config.loading import load_config
from monitor.config.schema import Config

settings.register_profile("riskmon", database=None)
settings.load_profile("riskmon")
# Hypothesis' caches (constants, unicode data) go under the system's temporary directory.
set_hypothesis_home_dir(Path(tempfile.gettempdir()) / f"riskmon-hypothesis-{os.getuid()}")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
MARKET_FILE = SHARED_DATA / "market" / "binance_spot_5m_2025H1.parquet"

BASE_TOML = """
[universe]
symbols = ["AAA", "BBB", "CCC"]

[estimator]
halflife = "10m"
slow_halflife = "2h"
min_observations = 10

[risk]
horizon = "1d"
confidence = [0.95, 0.99]
distribution = "normal"

[[portfolios]]
name = "main"
positions = [ { symbol = "AAA", quantity = 2.0 }, { symbol = "BBB", quantity = -1.0 } ]

[replay]
snapshot_interval = "1m"
"""


@pytest.fixture
def make_config(tmp_path: Path) -> Callable[..., Config]:
    """Write BASE_TOML plus extra TOML text to a file and load it."""

    def make(extra: str = "", base: str = BASE_TOML) -> Config:
        path = tmp_path / "riskmon.toml"
        path.write_text(textwrap.dedent(base) + textwrap.dedent(extra))
        return load_config(path, environ={})

    return make


def require_market_file() -> Path:
    """The shared 5-minute candle file, or skip with the reason."""
    if not MARKET_FILE.exists():
        pytest.skip(f"shared market data not present at {MARKET_FILE} (../shared is absent)")
    return MARKET_FILE
