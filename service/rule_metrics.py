"""riskmon's ``[[rules]]`` as Prometheus series: one source of thresholds for every alert path.

Every rule instance exports its state, the value it last compared and its thresholds, with the
labels riskmon's own sinks see: ``rule``, ``severity`` and the instance's labels (``portfolio``,
``account``, ``symbol``, ``a``/``b``, ``venue``). The shipped Prometheus rule alerts on
``riskmon_alert_state == 2``, so Prometheus, Alertmanager and riskmon's sinks fire on the same
condition, and no threshold is typed twice.

``riskmon_alert_routed_to_alertmanager`` says whether riskmon's own ``[[routes]]`` already send
the instance to an ``alertmanager`` sink; the Prometheus rule leaves those out, so one riskmon
alert is never paged twice when both paths are configured.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

from prometheus_client.core import Metric

from alerts.alertmanager import label_name
from alerts.routing import matches_alert
from monitor.config.schema import RouteConfig, SinkConfig
from monitor.rules import RuleInstance, RuleState

if TYPE_CHECKING:
    from service.daemon import Daemon

STATE_VALUES: Mapping[RuleState, float] = {
    RuleState.INACTIVE: 0.0,
    RuleState.PENDING: 1.0,
    RuleState.FIRING: 2.0,
}
"""``riskmon_alert_state``: 0 inactive, 1 pending (condition holding, ``for`` not yet passed),
2 firing."""


def instance_labels(inst: RuleInstance) -> dict[str, str]:
    """``rule``, ``severity`` and the instance's own labels (valid Prometheus label names)."""
    labels = {label_name(k): v for k, v in inst.labels}
    return labels | {"rule": inst.rule, "severity": inst.severity.value}


def routed_to_alertmanager(
    inst: RuleInstance, routes: Sequence[RouteConfig], sinks: Sequence[SinkConfig]
) -> bool:
    """Whether riskmon's own routes send ``inst``'s alerts to an ``alertmanager`` sink."""
    managers = {s.name for s in sinks if s.type == "alertmanager"}
    if not managers:
        return False
    labels, severity = dict(inst.labels), inst.severity.value
    return any(
        managers.intersection(route.sinks) and matches_alert(route, severity, labels)
        for route in routes
    )


def alert_families(daemon: Daemon) -> Iterator[Metric]:
    """The ``riskmon_alert_*`` families of every rule instance of ``daemon``."""
    state = _family("alert_state", "Rule instance state: 0 inactive, 1 pending, 2 firing.")
    value = _family("alert_value", "The value the rule instance last compared.")
    threshold = _family("alert_threshold", "The value that makes the rule instance fire.")
    resolve = _family(
        "alert_resolve_threshold", "The value beyond which a firing instance resolves."
    )
    routed = _family(
        "alert_routed_to_alertmanager",
        "1 when riskmon's own routes send the instance to an alertmanager sink.",
    )
    config = daemon.config
    for inst in daemon.rules.instances:
        labels = instance_labels(inst)
        state.add_sample(state.name, labels, STATE_VALUES[inst.state])
        if inst.last_value is not None and not math.isnan(inst.last_value):
            value.add_sample(value.name, labels, inst.last_value)
        threshold.add_sample(threshold.name, labels, inst.threshold)
        resolve.add_sample(resolve.name, labels, inst.resolve_threshold)
        on = routed_to_alertmanager(inst, config.routes, config.sinks)
        routed.add_sample(routed.name, labels, 1.0 if on else 0.0)
    yield from (state, value, threshold, resolve, routed)


def _family(name: str, doc: str) -> Metric:
    """A gauge family whose samples may carry different label names (one rule's labels)."""
    return Metric(f"riskmon_{name}", doc, "gauge")
