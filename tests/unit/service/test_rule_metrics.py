"""riskmon_alert_*: every rule instance's state, compared value and thresholds, as Prometheus
series with the labels riskmon's own sinks see; and whether riskmon routes it to Alertmanager."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from monitor.config.schema import Config
from monitor.rules import RuleInstance
from service.daemon import Daemon
from service.metrics import RiskCollector, ServiceStats, make_registry
from service.rule_metrics import alert_families

T0 = 1_750_000_000.0
RULES = """
[[rules]]
name = "var-limit"
metric = "var_99"
op = ">"
threshold = 3.0
resolve_threshold = 2.5
for = "1m"

[[rules]]
name = "spike"
metric = "avg_correlation"
op = ">"
threshold = 0.8
resolve_threshold = 0.7
severity = "critical"

[[rules]]
name = "pair"
metric = "correlation"
op = "<"
threshold = 0.2
severity = "info"
labels = { a = "AAA", b = "BBB" }
"""
SINKS = """
[[sinks]]
name = "am"
type = "alertmanager"
url = "http://127.0.0.1:9093"

[[sinks]]
name = "desk"
type = "file"
path = "STATE/desk.jsonl"

[[routes]]
severity = ["critical"]
sinks = ["am", "desk"]

[[routes]]
severity = ["warning"]
sinks = ["desk"]
"""


def _daemon(make_config: Callable[..., Config], tmp_path: Path, extra: str = "") -> Daemon:
    return Daemon(make_config(RULES + SINKS.replace("STATE", str(tmp_path)) + extra))


def _instance(daemon: Daemon, rule: str) -> RuleInstance:
    (found,) = [i for i in daemon.rules.instances if i.rule == rule]
    return found


def _samples(daemon: Daemon) -> dict[str, dict[str, tuple[dict[str, str], float]]]:
    """family -> rule -> (labels, value)."""
    found: dict[str, dict[str, tuple[dict[str, str], float]]] = {}
    for family in alert_families(daemon):
        for sample in family.samples:
            found.setdefault(family.name, {})[sample.labels["rule"]] = (
                sample.labels,
                sample.value,
            )
    return found


def test_state_value_and_thresholds_follow_the_rule_instance(
    make_config: Callable[..., Config], tmp_path: Path
) -> None:
    """0 inactive, 1 pending (the condition holds, ``for`` has not passed), 2 firing, back to 0
    at the resolve threshold; the value is the one last compared, thresholds as configured."""
    daemon = _daemon(make_config, tmp_path)
    var = _instance(daemon, "var-limit")
    states = []
    for ts, value in ((T0, 2.0), (T0 + 10, 5.0), (T0 + 70, 6.0), (T0 + 80, 2.8), (T0 + 90, 2.4)):
        var.step(ts, value)
        samples = _samples(daemon)
        states.append(samples["riskmon_alert_state"]["var-limit"][1])
        assert samples["riskmon_alert_value"]["var-limit"][1] == value
    assert states == [0.0, 1.0, 2.0, 2.0, 0.0]
    samples = _samples(daemon)
    labels, _ = samples["riskmon_alert_state"]["var-limit"]
    assert labels == {"rule": "var-limit", "severity": "warning", "portfolio": "main"}
    assert samples["riskmon_alert_threshold"]["var-limit"] == (labels, 3.0)
    assert samples["riskmon_alert_resolve_threshold"]["var-limit"] == (labels, 2.5)
    assert samples["riskmon_alert_state"]["pair"][0] == {
        "rule": "pair",
        "severity": "info",
        "a": "AAA",
        "b": "BBB",
    }
    assert samples["riskmon_alert_threshold"]["pair"][1] == 0.2
    assert samples["riskmon_alert_resolve_threshold"]["pair"][1] == 0.2  # defaults to threshold


def test_a_rule_not_yet_evaluated_has_a_state_but_no_value(
    make_config: Callable[..., Config], tmp_path: Path
) -> None:
    """Before a value is ready the instance is inactive and exports no value (not a 0)."""
    samples = _samples(_daemon(make_config, tmp_path))
    assert samples["riskmon_alert_state"]["spike"][1] == 0.0
    assert "spike" not in samples.get("riskmon_alert_value", {})
    assert samples["riskmon_alert_threshold"]["spike"][1] == 0.8


def test_routed_to_alertmanager_follows_riskmon_s_own_routes(
    make_config: Callable[..., Config], tmp_path: Path
) -> None:
    """1 where a matching route names an alertmanager sink, 0 otherwise (file sink, or the
    embedded log sink when nothing matches)."""
    routed = _samples(_daemon(make_config, tmp_path))["riskmon_alert_routed_to_alertmanager"]
    assert {rule: value for rule, (_, value) in routed.items()} == {
        "spike": 1.0,
        "var-limit": 0.0,
        "pair": 0.0,
    }
    by_label = '\n[[routes]]\nlabels = { portfolio = "main" }\nsinks = ["am"]\n'
    routed = _samples(_daemon(make_config, tmp_path, by_label))[
        "riskmon_alert_routed_to_alertmanager"
    ]
    assert routed["var-limit"][1] == 1.0
    assert routed["pair"][1] == 0.0


def test_the_exposition_with_per_rule_labels_parses_and_passes_promtool(
    make_config: Callable[..., Config], tmp_path: Path
) -> None:
    """One family carries different label names per rule; the text format allows it, client
    parsers read it, and ``promtool check metrics`` finds nothing to fix, process metrics and
    all."""
    daemon = _daemon(make_config, tmp_path)
    _instance(daemon, "spike").step(T0, 0.9)
    registry, _ = make_registry(
        RiskCollector(lambda: daemon, ServiceStats(), time.monotonic, time.time)
    )
    text = generate_latest(registry)
    families = {f.name: f for f in text_string_to_metric_families(text.decode())}
    states = {s.labels["rule"]: s for s in families["riskmon_alert_state"].samples}
    assert states["spike"].value == 2.0
    assert set(states["pair"].labels) == {"rule", "severity", "a", "b"}
    assert {"process_resident_memory_bytes", "process_open_fds", "python_info"} <= set(families)
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (make system-deps)")
    result = subprocess.run(
        [promtool, "check", "metrics"],
        input=text,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
