"""The metrics that alert rules may watch, with the labels each one takes.

The config loader validates ``[[rules]]`` against this catalogue and the rule engine imports it,
so both agree on metric names and label keys. Metrics per confidence level (``var_99``) exist
only for the levels configured in ``[risk] confidence``; :func:`metric_catalogue` builds the full
mapping for a given set of levels.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType


class MetricKind(StrEnum):
    """What a metric is measured over; decides which labels identify one instance."""

    MARKET = "market"
    SYMBOL = "symbol"
    PAIR = "pair"
    PORTFOLIO = "portfolio"
    ACCOUNT = "account"
    HEDGE = "hedge"
    FEED = "feed"


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """The labels a rule on one metric must and may carry.

    Attributes:
        kind: what the metric is measured over.
        required_labels: label keys every rule on this metric must set.
        optional_labels: label keys a rule may set to narrow it to one instance.
    """

    kind: MetricKind
    required_labels: tuple[str, ...] = ()
    optional_labels: tuple[str, ...] = ()

    @property
    def allowed_labels(self) -> tuple[str, ...]:
        """Every label key a rule on this metric may set, required ones first."""
        return self.required_labels + self.optional_labels


_MARKET = MetricSpec(MetricKind.MARKET)
_SYMBOL = MetricSpec(MetricKind.SYMBOL, required_labels=("symbol",))
_PAIR = MetricSpec(MetricKind.PAIR, required_labels=("a", "b"))
_PORTFOLIO = MetricSpec(MetricKind.PORTFOLIO, optional_labels=("portfolio",))
_ACCOUNT = MetricSpec(MetricKind.ACCOUNT, optional_labels=("account",))
_FEED = MetricSpec(MetricKind.FEED, required_labels=("venue", "symbol"))
_HEDGE = MetricSpec(MetricKind.HEDGE, optional_labels=("portfolio", "account"))

METRICS: Mapping[str, MetricSpec] = MappingProxyType(
    {
        "avg_correlation": _MARKET,
        "avg_correlation_slow": _MARKET,
        "absorption_ratio": _MARKET,
        "absorption_ratio_slow": _MARKET,
        "absorption_ratio_shift": _MARKET,
        "effective_bets": _MARKET,
        "turbulence": _MARKET,
        "price": _SYMBOL,
        "volatility": _SYMBOL,
        "volatility_slow": _SYMBOL,
        "correlation": _PAIR,
        "correlation_slow": _PAIR,
        "portfolio_value": _PORTFOLIO,
        "portfolio_volatility": _PORTFOLIO,
        "diversification_ratio": _PORTFOLIO,
        "diversification_benefit": _PORTFOLIO,
        "margin_ratio": _ACCOUNT,
        "liquidation_distance_sigma": _ACCOUNT,
        "stress_loss": _ACCOUNT,
        "stress_loss_ratio": _ACCOUNT,
        "vega": _ACCOUNT,
        "hedge_drift": _HEDGE,
        "feed_staleness_seconds": _FEED,
    }
)
"""Metrics that exist whatever the configuration, by name."""

CONFIDENCE_METRICS: Mapping[str, MetricSpec] = MappingProxyType(
    {"var": _PORTFOLIO, "cvar": _PORTFOLIO, "stressed_var": _PORTFOLIO}
)
"""Metric name prefixes that exist once per configured confidence level: ``var`` -> ``var_99``."""

_CONFIDENCE_METRIC = re.compile(r"(?P<prefix>[a-z_]+?)_(?P<tag>\d+)")


def confidence_tag(confidence: float) -> str:
    """The digits after ``"0."`` that name a confidence level in metric and column names.

    Args:
        confidence: a level strictly between 0 and 1 with at most three decimals.

    Returns:
        At least two digits, trailing zeros dropped: ``"95"`` for 0.95, ``"975"`` for 0.975,
        ``"90"`` for 0.9.
    """
    digits = f"{confidence:.3f}".split(".")[1]
    return digits[:2] + digits[2:].rstrip("0")


def metric_catalogue(confidence: Iterable[float]) -> Mapping[str, MetricSpec]:
    """Every metric a rule may watch when ``[risk] confidence`` holds these levels.

    Args:
        confidence: the configured confidence levels.

    Returns:
        :data:`METRICS` plus ``var_D``, ``cvar_D`` and ``stressed_var_D`` for each level's tag D.
    """
    tags = [confidence_tag(level) for level in confidence]
    per_level = {
        f"{prefix}_{tag}": spec for prefix, spec in CONFIDENCE_METRICS.items() for tag in tags
    }
    return MappingProxyType({**METRICS, **per_level})


def lookup_metric(name: str, confidence: Iterable[float]) -> MetricSpec:
    """Find a metric by name, explaining what is available when it does not exist.

    Args:
        name: the metric name from a rule.
        confidence: the configured confidence levels.

    Returns:
        The metric's label spec.

    Raises:
        ValueError: the metric is unknown, or names a confidence level that is not configured.
    """
    catalogue = metric_catalogue(confidence)
    if name in catalogue:
        return catalogue[name]
    match = _CONFIDENCE_METRIC.fullmatch(name)
    if match is not None and match["prefix"] in CONFIDENCE_METRICS:
        prefix = match["prefix"]
        available = ", ".join(m for m in catalogue if m.startswith(prefix + "_"))
        raise ValueError(
            f'"{name}" needs confidence 0.{match["tag"]} in [risk] confidence; '
            f"available: {available}"
        )
    raise ValueError(f'unknown metric "{name}"; expected one of {", ".join(catalogue)}')
