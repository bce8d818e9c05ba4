"""Turn an alert event into a notification a person can act on.

The words name the rule, the portfolio, the value against the threshold and the figures behind
it: the most correlated pairs of the universe, the largest component VaR of the portfolio, and
for a book with ``hedge_with`` what to trade now (:mod:`alerts.hedge_words`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections.abc import Mapping

import numpy as np

from alerts.hedge_words import hedge_details
from alerts.notification import Notification
from alerts.text import format_number
from monitor.config.schema import RuleConfig
from monitor.model import AlertEvent, AlertState
from monitor.risk.snapshot import RiskSnapshot

_WORDS = {
    "avg_correlation": "the average correlation of the universe",
    "avg_correlation_slow": "the slow average correlation of the universe",
    "absorption_ratio": "the absorption ratio",
    "absorption_ratio_shift": "the absorption-ratio shift",
    "turbulence": "market turbulence",
    "effective_bets": "the effective number of bets",
    "portfolio_value": "the portfolio value",
    "portfolio_volatility": "the portfolio volatility",
    "diversification_ratio": "the diversification ratio",
    "diversification_benefit": "the diversification benefit",
    "feed_staleness_seconds": "the seconds since the feed's last quote",
    "price": "the price",
    "volatility": "the volatility",
    "correlation": "the correlation",
    "hedge_drift": "the hedge drift",
}


def dedup_key(event: AlertEvent) -> str:
    """Stable per rule and label set: firing, re-sends and resolve share it."""
    labels = ",".join(f"{k}={v}" for k, v in event.labels)
    return f"riskmon/{event.rule}/{labels}"


def describe(metric: str) -> str:
    """Plain words for a metric name."""
    for prefix, words in (
        ("stressed_var_", "the stressed VaR"),
        ("cvar_", "the CVaR"),
        ("var_", "the VaR"),
    ):
        if metric.startswith(prefix):
            return f"{words} at {metric.removeprefix(prefix)}%"
    return _WORDS.get(metric, metric.replace("_", " "))


def build(
    event: AlertEvent,
    rules: Mapping[str, RuleConfig],
    snap: RiskSnapshot | None,
    dashboard_url: str | None = None,
) -> Notification:
    """The notification for ``event`` with the figures of ``snap``."""
    rule = rules.get(event.rule)
    metric = rule.metric if rule is not None else event.rule
    above = rule is None or rule.op in (">", ">=")
    where = f" in {event.portfolio}" if event.portfolio else ""
    labels = ", ".join(f"{k}={v}" for k, v in event.labels if k != "portfolio")
    subject = describe(metric) + (f" ({labels})" if labels else "")
    value, threshold = format_number(event.value), format_number(event.threshold)
    if event.state is AlertState.FIRING:
        side = "above" if above else "below"
        summary = f"{subject}{where} is {value}, {side} the limit {threshold}."
    else:
        summary = f"Resolved: {subject}{where} is back at {value} (resolve threshold {threshold})."
    title = f"{event.severity.value.upper()} {event.rule} {event.state.value}"
    return Notification(
        event=event,
        dedup_key=dedup_key(event),
        title=title,
        summary=summary[0].upper() + summary[1:],
        details=_details(event, snap),
        dashboard_url=dashboard_url,
    )


def _details(event: AlertEvent, snap: RiskSnapshot | None) -> tuple[tuple[str, str], ...]:
    if snap is None:
        return ()
    out: list[tuple[str, str]] = []
    pairs = _top_pairs(snap, 3)
    if pairs:
        out.append(("most correlated pairs", pairs))
    if snap.market.avg_correlation is not None:
        out.append(("average correlation", f"{snap.market.avg_correlation:.3f}"))
    risk = snap.portfolio(event.portfolio) if event.portfolio else None
    tail = risk.tails[-1] if risk is not None and risk.tails else None
    components = tail.component_var if tail is not None else None
    if risk is not None and tail is not None and components is not None:
        ranked = sorted(zip(risk.symbols, components, strict=True), key=lambda p: -abs(p[1]))[:3]
        out.append(
            (
                f"largest component VaR ({tail.confidence:.0%})",
                ", ".join(f"{s} {v:,.0f}" for s, v in ranked),
            )
        )
        if tail.var is not None and tail.stressed_var is not None:
            out.append(("VaR / stressed VaR", f"{tail.var:,.0f} / {tail.stressed_var:,.0f}"))
    out.extend(_hedge(event, snap))
    return tuple(out)


def _hedge(event: AlertEvent, snap: RiskSnapshot) -> list[tuple[str, str]]:
    """The hedge suggestion of the event's portfolio or account, when it has ``hedge_with``."""
    account = dict(event.labels).get("account")
    if account is not None:
        held = snap.account(account)
        hedge, where = (None if held is None else held.hedge), f"account {account}"
    else:
        risk = snap.portfolio(event.portfolio) if event.portfolio else None
        hedge, where = (None if risk is None else risk.hedge), f"portfolio {event.portfolio}"
    return [] if hedge is None else hedge_details(where, hedge)


def _top_pairs(snap: RiskSnapshot, n: int) -> str:
    u = list(snap.universe)
    if len(u) < 2:
        return ""
    sub = snap.correlation[np.ix_(u, u)]
    i, j = np.triu_indices(len(u), 1)
    values = sub[i, j]
    order = [k for k in np.argsort(-values) if math.isfinite(values[k])][:n]
    return ", ".join(
        f"{snap.symbols[u[i[k]]]}/{snap.symbols[u[j[k]]]} {values[k]:.2f}" for k in order
    )


def retirement(firing: Notification, ts: float) -> Notification:
    """The resolve of a firing alert whose rule instance is no longer evaluated (its rule or
    portfolio left the configuration): receivers must not keep it open forever."""
    event = dataclasses.replace(firing.event, ts=ts, state=AlertState.RESOLVED)
    since = dt.datetime.fromtimestamp(firing.event.ts, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
    return dataclasses.replace(
        firing,
        event=event,
        title=f"{event.severity.value.upper()} {event.rule} resolved",
        summary=(
            f"Resolved: {event.rule} is no longer evaluated (its rule or instance left the "
            f"configuration); it was firing since {since} UTC."
        ),
        details=(),
    )
