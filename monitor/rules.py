"""Threshold rules: inactive -> pending -> firing -> (resolved) inactive, in event time.

A rule fires when its condition (``value op threshold``) has held for ``for`` seconds of event
time, and resolves when the value no longer satisfies ``value op resolve_threshold`` (hysteresis:
for ``>`` the resolve threshold is at or below the threshold). Each transition to firing or
resolved is an :class:`~monitor.model.AlertEvent`. A value that is not ready (None) changes
nothing: a pending rule stays pending and a firing rule keeps firing until a real value clears it.

A rule on a portfolio metric without a ``portfolio`` label runs one instance per portfolio, and
one on an account metric without an ``account`` label one instance per account; one on
``hedge_drift`` without either label one instance per portfolio and one per account.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from monitor.model import AlertEvent, AlertState, Severity
from monitor.risk.snapshot import (
    RiskSnapshot,
    is_account_metric,
    is_hedge_metric,
    is_portfolio_metric,
    metric_value,
)

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}

MetricReader = Callable[[str, Mapping[str, str], str | None], float | None]


class RuleSpec(Protocol):
    """What the rule engine needs of a configured rule."""

    @property
    def name(self) -> str: ...
    @property
    def metric(self) -> str: ...
    @property
    def op(self) -> str: ...
    @property
    def threshold(self) -> float: ...
    @property
    def for_(self) -> float: ...
    @property
    def resolve_threshold(self) -> float | None: ...
    @property
    def severity(self) -> Any: ...
    @property
    def labels(self) -> Any: ...


class RuleState(StrEnum):
    """Where a rule instance stands."""

    INACTIVE = "inactive"
    PENDING = "pending"
    FIRING = "firing"


RuleKey = tuple[str, tuple[tuple[str, str], ...]]
"""(rule name, sorted labels): what identifies a rule instance across restarts."""


@dataclass(frozen=True, slots=True)
class RuleInstanceState:
    """The mutable part of a :class:`RuleInstance`, for checkpoints."""

    rule: str
    labels: tuple[tuple[str, str], ...]
    state: RuleState
    since: float | None
    last_value: float | None
    fired_at: float | None

    @property
    def key(self) -> RuleKey:
        """(rule name, labels)."""
        return self.rule, self.labels


@dataclass(slots=True)
class RuleInstance:
    """One rule applied to one label set (and portfolio), with its mutable state."""

    rule: str
    metric: str
    labels: tuple[tuple[str, str], ...]
    portfolio: str | None
    compare: Callable[[float, float], bool]
    threshold: float
    resolve_threshold: float
    for_s: float
    severity: Severity
    state: RuleState = RuleState.INACTIVE
    since: float | None = None
    last_value: float | None = None
    fired_at: float | None = field(default=None)

    def step(self, ts: float, value: float | None) -> AlertEvent | None:
        """Advance the state machine with the value observed at ``ts``."""
        if value is None:
            return None
        self.last_value = value
        if self.state is RuleState.FIRING:
            if not self.compare(value, self.resolve_threshold):
                self.state, self.since, self.fired_at = RuleState.INACTIVE, None, None
                return self._event(ts, AlertState.RESOLVED, value, self.resolve_threshold)
            return None
        if not self.compare(value, self.threshold):
            self.state, self.since = RuleState.INACTIVE, None
            return None
        if self.state is RuleState.INACTIVE:
            self.state, self.since = RuleState.PENDING, ts
        if self.since is not None and ts - self.since >= self.for_s:
            self.state, self.fired_at = RuleState.FIRING, ts
            return self._event(ts, AlertState.FIRING, value, self.threshold)
        return None

    def _event(self, ts: float, state: AlertState, value: float, threshold: float) -> AlertEvent:
        return AlertEvent(
            ts=ts,
            rule=self.rule,
            state=state,
            severity=self.severity,
            labels=self.labels,
            value=value,
            threshold=threshold,
            portfolio=self.portfolio,
        )


def _instances(
    rule: RuleSpec, portfolios: Sequence[str], accounts: Sequence[str]
) -> Iterable[RuleInstance]:
    labels = dict(rule.labels.items() if hasattr(rule.labels, "items") else rule.labels)
    compare = _OPS[rule.op]
    resolve = rule.threshold if rule.resolve_threshold is None else rule.resolve_threshold
    pairs: list[tuple[str | None, dict[str, str]]] = [(None, labels)]
    if is_portfolio_metric(rule.metric):
        targets = [labels["portfolio"]] if "portfolio" in labels else list(portfolios)
        pairs = [(t, {**labels, "portfolio": t}) for t in targets]
    elif is_account_metric(rule.metric) and "account" not in labels:
        pairs = [(None, {**labels, "account": a}) for a in accounts]
    elif is_hedge_metric(rule.metric):
        pairs = _hedged_books(labels, portfolios, accounts)
    for target, full in pairs:
        yield RuleInstance(
            rule=rule.name,
            metric=rule.metric,
            labels=tuple(sorted(full.items())),
            portfolio=target,
            compare=compare,
            threshold=rule.threshold,
            resolve_threshold=resolve,
            for_s=rule.for_,
            severity=Severity(str(getattr(rule.severity, "value", rule.severity))),
        )


def _hedged_books(
    labels: dict[str, str], portfolios: Sequence[str], accounts: Sequence[str]
) -> list[tuple[str | None, dict[str, str]]]:
    """(portfolio, labels) of each instance of a hedge rule: the labelled book, else every one."""
    if "portfolio" in labels:
        return [(labels["portfolio"], labels)]
    if "account" in labels:
        return [(None, labels)]
    return [(p, {**labels, "portfolio": p}) for p in portfolios] + [
        (None, {**labels, "account": a}) for a in accounts
    ]


class RuleEngine:
    """All configured rule instances; pure and synchronous.

    Args:
        rules: configured rules.
        portfolios: names of the configured portfolios.
        accounts: names of the accounts; a rule on an account metric without an ``account``
            label runs one instance per account.
    """

    def __init__(
        self, rules: Sequence[RuleSpec], portfolios: Sequence[str], accounts: Sequence[str] = ()
    ) -> None:
        self._specs = tuple(rules)
        self._portfolios = tuple(portfolios)
        self.instances: tuple[RuleInstance, ...] = ()
        self.set_accounts(accounts)

    def set_accounts(self, accounts: Sequence[str]) -> None:
        """Re-derive the per-account instances for a new set of accounts.

        Instances that exist before and after keep their state (pending time, firing).
        """
        saved = self.export_state()
        self.instances = tuple(
            inst
            for rule in self._specs
            for inst in _instances(rule, self._portfolios, tuple(accounts))
        )
        self.import_state(saved)

    def export_state(self) -> tuple[RuleInstanceState, ...]:
        """The state of every instance, for checkpoints."""
        return tuple(
            RuleInstanceState(i.rule, i.labels, i.state, i.since, i.last_value, i.fired_at)
            for i in self.instances
        )

    def import_state(self, states: Iterable[RuleInstanceState]) -> tuple[RuleKey, ...]:
        """Set the state of each instance with the same (rule name, labels) as one of ``states``.

        Returns:
            The keys of the instances whose state was set; the others are left as they are.
        """
        by_key = {s.key: s for s in states}
        restored: list[RuleKey] = []
        for inst in self.instances:
            saved = by_key.get((inst.rule, inst.labels))
            if saved is not None:
                inst.state, inst.since = saved.state, saved.since
                inst.last_value, inst.fired_at = saved.last_value, saved.fired_at
                restored.append((inst.rule, inst.labels))
        return tuple(restored)

    def evaluate(self, snap: RiskSnapshot, extra: MetricReader | None = None) -> list[AlertEvent]:
        """Step every instance with the snapshot's values; return the transitions.

        ``extra`` reads metrics a snapshot does not hold (e.g. feed staleness); it is asked
        only for metrics the snapshot does not know.
        """
        events: list[AlertEvent] = []
        for inst in self.instances:
            labels = dict(inst.labels)
            value = metric_value(snap, inst.metric, labels, inst.portfolio)
            if value is None and extra is not None:
                value = extra(inst.metric, labels, inst.portfolio)
            event = inst.step(snap.ts, value)
            if event is not None:
                events.append(event)
        return events
