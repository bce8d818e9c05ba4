"""deploy/: files parse, speak the metrics contract of docs/metrics.md, and agree with each other.

The helpers ``rule_exprs`` and ``dashboard_exprs`` are shared with
tests/integration/test_prometheus.py, which runs every expression through a real Prometheus.
"""

from __future__ import annotations

import configparser
import json
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.config.loading import load_config
from tests.conftest import REPO

DEPLOY = REPO / "deploy"
RULES_DIR = DEPLOY / "prometheus" / "rules"
RULE_TESTS_DIR = DEPLOY / "prometheus" / "tests"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "riskmon.json"
K8S = DEPLOY / "k8s"
CONTAINER_CONFIG = DEPLOY / "docker" / "riskmon.toml"
METRICS_DOC = REPO / "docs" / "metrics.md"

# Metrics a rule may name before riskmon exports them (the rule file must say so); none now.
FUTURE_METRICS: frozenset[str] = frozenset()
# Labels Prometheus adds (job, instance), renames (exported_instance: riskmon_rule_state's
# own `instance`) or that histograms carry (le).
PROMETHEUS_LABELS = frozenset({"job", "instance", "exported_instance", "le"})
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count", "_created")
METRIC_NAME = re.compile(r"\briskmon_[a-zA-Z0-9_]+")
SELECTOR = re.compile(r"\b(riskmon_[a-zA-Z0-9_]+)\s*\{([^}]*)\}")
MATCHER_LABEL = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")
GROUPING = re.compile(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)")


# --- shared helpers --------------------------------------------------------------------


def load_yaml_documents(path: Path) -> list[Any]:
    """Every document of a YAML file."""
    return list(yaml.safe_load_all(path.read_text(encoding="utf-8")))


def rule_files() -> list[Path]:
    """The Prometheus rule files, in file-name order."""
    return sorted(RULES_DIR.glob("*.yml"))


def rule_groups() -> list[dict[str, Any]]:
    """The groups of every rule file, in file-name order."""
    return [g for path in rule_files() for g in yaml.safe_load(path.read_text())["groups"]]


def alerting_rules() -> list[dict[str, Any]]:
    """Every alerting rule of the rule files."""
    return [r for g in rule_groups() for r in g["rules"] if "alert" in r]


def rule_exprs() -> dict[str, str]:
    """PromQL of every rule, keyed by ``file:alert-or-record``."""
    exprs: dict[str, str] = {}
    for path in rule_files():
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                exprs[f"{path.name}:{rule.get('alert') or rule.get('record')}"] = rule["expr"]
    return exprs


def dashboard() -> dict[str, Any]:
    """The Grafana dashboard JSON."""
    data: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return data


def dashboard_panels(board: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
    """Every panel, including those nested in collapsed rows."""
    for panel in (board or dashboard())["panels"]:
        yield panel
        yield from panel.get("panels", [])


def dashboard_exprs() -> dict[str, str]:
    """PromQL of every panel target and query variable, Grafana variables still in place.

    A variable's ``label_values(metric, label)`` becomes its metric selector.
    """
    board = dashboard()
    exprs: dict[str, str] = {}
    for panel in dashboard_panels(board):
        for target in panel.get("targets", []):
            exprs[f"panel {panel['title']!r} {target['refId']}"] = target["expr"]
    for variable in board["templating"]["list"]:
        if variable["type"] != "query":
            continue
        query = variable["query"]
        text = query["query"] if isinstance(query, dict) else query
        match = re.fullmatch(r"label_values\((.+),\s*[a-zA-Z_]\w*\)", text.strip())
        exprs[f"variable {variable['name']}"] = match.group(1) if match else text
    return exprs


def documented_metrics() -> dict[str, tuple[str, frozenset[str]]]:
    """docs/metrics.md's table: metric name -> (type, label names)."""
    metrics: dict[str, tuple[str, frozenset[str]]] = {}
    for line in METRICS_DOC.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not cells[0].startswith("`riskmon_"):
            continue
        labels = re.findall(r"`([a-z_]+)`", re.sub(r"\([^)]*\)", "", cells[2]))
        metrics[cells[0].strip("`")] = (cells[1].split()[0], frozenset(labels))
    return metrics


def metric_names(expr: str) -> set[str]:
    """The riskmon_* series names an expression reads."""
    return set(METRIC_NAME.findall(expr))


def base_metric(name: str, documented: dict[str, tuple[str, frozenset[str]]]) -> str:
    """A histogram's series name mapped to the documented histogram name."""
    for suffix in HISTOGRAM_SUFFIXES:
        base = name.removesuffix(suffix)
        if base != name and documented.get(base, ("",))[0] == "histogram":
            return base
    return name


def all_exprs() -> dict[str, str]:
    """Rules, dashboard and the k8s PrometheusRule."""
    exprs = {f"rules {k}": v for k, v in rule_exprs().items()}
    exprs.update({f"dashboard {k}": v for k, v in dashboard_exprs().items()})
    for group in k8s_prometheus_rule()["spec"]["groups"]:
        for rule in group["rules"]:
            exprs[f"k8s {rule.get('alert') or rule.get('record')}"] = rule["expr"]
    return exprs


def k8s_documents() -> list[dict[str, Any]]:
    """Every Kubernetes object of deploy/k8s."""
    docs: list[dict[str, Any]] = []
    for path in sorted(K8S.glob("*.yaml")):
        docs.extend(d for d in load_yaml_documents(path) if d and "kind" in d)
    return docs


def k8s_object(kind: str) -> dict[str, Any]:
    """The one object of ``kind`` in deploy/k8s."""
    found = [d for d in k8s_documents() if d["kind"] == kind]
    assert len(found) == 1, f"expected one {kind} in deploy/k8s, found {len(found)}"
    return found[0]


def k8s_prometheus_rule() -> dict[str, Any]:
    """deploy/k8s/prometheusrule.yaml."""
    data: dict[str, Any] = yaml.safe_load((K8S / "prometheusrule.yaml").read_text())
    return data


# --- files parse -----------------------------------------------------------------------


def deploy_files(*suffixes: str) -> list[Path]:
    return sorted(p for p in DEPLOY.rglob("*") if p.is_file() and p.suffix in suffixes)


@pytest.mark.parametrize(
    "path", deploy_files(".yml", ".yaml"), ids=lambda p: str(p.relative_to(DEPLOY))
)
def test_every_yaml_file_parses(path: Path) -> None:
    documents = load_yaml_documents(path)
    assert documents, f"{path} is empty"
    assert all(isinstance(d, dict) for d in documents), f"{path}: a document is not a mapping"


@pytest.mark.parametrize("path", deploy_files(".json"), ids=lambda p: str(p.relative_to(DEPLOY)))
def test_every_json_file_parses(path: Path) -> None:
    assert isinstance(json.loads(path.read_text(encoding="utf-8")), dict)


def test_the_deploy_folder_has_the_expected_files() -> None:
    expected = [
        "prometheus/prometheus.yml",
        "prometheus/rules/riskmon-health.yml",
        "prometheus/rules/riskmon-rules.yml",
        "alertmanager/alertmanager.yml",
        "grafana/provisioning/datasources/prometheus.yml",
        "grafana/provisioning/dashboards/riskmon.yml",
        "grafana/dashboards/riskmon.json",
        "systemd/riskmon.service",
        "docker/Dockerfile",
        "docker-compose.yml",
        "k8s/render_prometheusrule.py",
        "k8s/prometheusrule.yaml",
    ]
    assert [p for p in expected if not (DEPLOY / p).is_file()] == []
    assert list(RULE_TESTS_DIR.glob("*.yml"))


# --- the metrics contract --------------------------------------------------------------


def test_metrics_doc_parses() -> None:
    documented = documented_metrics()
    assert len(documented) > 40
    assert documented["riskmon_portfolio_var"] == ("gauge", frozenset({"portfolio", "confidence"}))
    assert documented["riskmon_tick_to_snapshot_latency_seconds"][0] == "histogram"


def test_every_metric_used_is_documented() -> None:
    documented = documented_metrics()
    undocumented = {
        f"{where}: {name}"
        for where, expr in all_exprs().items()
        for name in metric_names(expr)
        if base_metric(name, documented) not in documented and name not in FUTURE_METRICS
    }
    assert undocumented == set(), "not in docs/metrics.md"


def test_every_label_used_is_documented() -> None:
    documented = documented_metrics()
    every_label = frozenset().union(*(labels for _, labels in documented.values()))
    problems: set[str] = set()
    for where, expr in all_exprs().items():
        for name, matchers in SELECTOR.findall(expr):
            base = base_metric(name, documented)
            if base not in documented:
                continue  # future metric, or reported by the test above
            allowed = documented[base][1] | PROMETHEUS_LABELS
            problems.update(
                f"{where}: {name} has no label {label!r}"
                for label in MATCHER_LABEL.findall(matchers)
                if label not in allowed
            )
        for labels in GROUPING.findall(expr):
            problems.update(
                f"{where}: unknown label {label!r} in a grouping"
                for label in (x.strip() for x in labels.split(","))
                if label and label not in every_label | PROMETHEUS_LABELS
            )
    assert problems == set()


RISK_METRICS = re.compile(
    r"riskmon_(price|volatility_ratio|average_correlation|correlation|absorption_ratio\w*|"
    r"effective_bets|turbulence|portfolio_\w+|account_\w+)$"
)
"""The risk figures: their thresholds belong in riskmon's [[rules]], never in deploy/."""


def test_no_risk_threshold_is_hard_coded_in_deploy() -> None:
    """Prometheus watches riskmon's health; risk alerts come from riskmon's own rule states."""
    documented = documented_metrics()
    risk = {name for name in documented if RISK_METRICS.match(name)}
    assert {"riskmon_portfolio_var", "riskmon_account_margin_ratio"} <= risk
    used = {
        f"{where}: {name}"
        for where, expr in rule_exprs().items()
        for name in metric_names(expr)
        if name in risk
    }
    assert used == set()
    (forward,) = [r for r in alerting_rules() if "riskmon_alert_state" in r["expr"]]
    assert metric_names(forward["expr"]) == {
        "riskmon_alert_state",
        "riskmon_alert_routed_to_alertmanager",
    }
    assert not re.search(
        r"\d", forward["expr"].replace("10m", "").replace("== 1", "").replace("== 2", "")
    ), "no number but the states, the hold window and the routed flag"
    assert not FUTURE_METRICS


# --- rules -----------------------------------------------------------------------------


def test_every_alert_has_severity_category_for_and_annotations() -> None:
    """Health alerts set their severity; riskmon's rule alerts carry their rule's own."""
    alerts = alerting_rules()
    assert len(alerts) >= 15
    names = [a["alert"] for a in alerts]
    assert len(names) == len(set(names)), "duplicate alert names"
    for alert in alerts:
        assert alert["alert"].startswith("Riskmon"), alert["alert"]
        if alert["alert"] == "RiskmonRuleFiring":
            assert "severity" not in alert["labels"], "the rule's severity is the series' label"
        else:
            assert alert["labels"]["severity"] in {"critical", "warning"}, alert["alert"]
        assert alert["labels"]["category"], alert["alert"]
        assert alert["annotations"]["summary"].strip(), alert["alert"]
        assert alert["annotations"]["description"].strip(), alert["alert"]
        assert re.fullmatch(r"\d+[smh]", alert["for"]), alert["alert"]


def test_the_requested_selectors_are_used() -> None:
    exprs = {r["alert"]: r["expr"] for r in alerting_rules()}
    assert "riskmon_alert_state == 2" in exprs["RiskmonRuleFiring"]
    assert "riskmon_feed_staleness_seconds" in exprs["RiskmonFeedStale"]
    assert "riskmon_alerts_oldest_queued_age_seconds" in exprs["RiskmonAlertDeliveryStuck"]
    assert "riskmon_checkpoint_last_success_timestamp_seconds" in exprs["RiskmonCheckpointTooOld"]
    assert "riskmon_bus_connected" in exprs["RiskmonBusDisconnected"]
    assert {g["name"] for g in rule_groups()} == {"riskmon-health", "riskmon-rules"}


def test_every_alert_is_unit_tested_firing_and_not_firing() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    tested_files: set[str] = set()
    for path in RULE_TESTS_DIR.glob("*.yml"):
        data = yaml.safe_load(path.read_text())
        tested_files.update(Path(f).name for f in data["rule_files"])
        for test in data["tests"]:
            for case in test.get("alert_rule_test", []):
                (firing if case.get("exp_alerts") else quiet).add(case["alertname"])
    names = {a["alert"] for a in alerting_rules()}
    assert tested_files == {p.name for p in rule_files()}
    assert names - firing == set(), "alerts without a firing case"
    assert names - quiet == set(), "alerts without a not-firing case"


def test_prometheus_config_loads_the_rule_files_and_alertmanager() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    assert config["rule_files"] == ["rules/*.yml"]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["riskmon"]["scrape_interval"] == "5s"
    assert jobs["riskmon"]["static_configs"] == [{"targets": ["riskmon:9464"]}]
    assert not jobs["riskmon"].get("honor_labels", False)
    alertmanagers = config["alerting"]["alertmanagers"]
    assert alertmanagers == [{"static_configs": [{"targets": ["alertmanager:9093"]}]}]
    token_file = load_config(CONTAINER_CONFIG, environ={}).server.token_file
    assert jobs["riskmon"]["authorization"] == {"type": "Bearer", "credentials_file": token_file}


@pytest.mark.parametrize("name", ["prometheus.yml", "prometheus-bus.yml"])
def test_prometheus_configs_pass_promtool_with_their_token_file(tmp_path: Path, name: str) -> None:
    """`make deploy-check` checks syntax only (the token file exists in the container only):
    here the full check runs, rule files included, with a token file in its place."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (make system-deps)")
    config = yaml.safe_load((DEPLOY / "prometheus" / name).read_text())
    token = tmp_path / "riskmon_token"
    token.write_text("t0ken\n")
    config["rule_files"] = [str(RULES_DIR / "*.yml")]
    for job in config["scrape_configs"]:
        if "authorization" in job:
            job["authorization"]["credentials_file"] = str(token)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(config))
    result = subprocess.run(
        [promtool, "check", "config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "authorization" in config["scrape_configs"][0]


# --- k8s -------------------------------------------------------------------------------


def test_k8s_prometheus_rule_equals_the_rule_files() -> None:
    rule = k8s_prometheus_rule()
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["kind"] == "PrometheusRule"
    assert rule["spec"]["groups"] == rule_groups()


def test_k8s_prometheus_rule_is_rendered_by_the_script() -> None:
    script = K8S / "render_prometheusrule.py"
    result = subprocess.run(
        [sys.executable, str(script), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_k8s_prometheus_rule_passes_promtool(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (make system-deps)")
    rules = tmp_path / "rules.yml"
    rules.write_text(yaml.safe_dump({"groups": k8s_prometheus_rule()["spec"]["groups"]}))
    result = subprocess.run(
        [promtool, "check", "rules", str(rules)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_container_config_is_valid_and_the_configmap_holds_it() -> None:
    """Every interface of the container, so bearer auth from the mounted secret file."""
    config = load_config(CONTAINER_CONFIG, environ={})
    assert config.server.listen == "0.0.0.0:9464"
    assert config.server.auth == "bearer"
    assert config.server.token_file == "/run/secrets/riskmon_token"
    assert not config.server.allow_unauthenticated
    assert config.state.dir == "/var/lib/riskmon"
    configmap = k8s_object("ConfigMap")
    assert configmap["data"]["riskmon.toml"] == CONTAINER_CONFIG.read_text(), (
        "deploy/k8s/configmap.yaml must hold deploy/docker/riskmon.toml verbatim"
    )
    assert tomllib.loads(configmap["data"]["riskmon.toml"])["server"]["listen"] == "0.0.0.0:9464"


def test_k8s_deployment_probes_security_and_wiring() -> None:
    deployment = k8s_object("Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    port = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert port == {"metrics": 9464}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert container["resources"]["requests"]
    assert container["resources"]["limits"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["args"] == ["run", "--config", "/etc/riskmon/riskmon.toml"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["config"] == "/etc/riskmon"
    assert mounts["state"] == "/var/lib/riskmon"
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["config"]["configMap"]["name"] == k8s_object("ConfigMap")["metadata"]["name"]
    assert token_path(container, pod) == load_config(CONTAINER_CONFIG, environ={}).server.token_file
    claim = volumes["state"]["persistentVolumeClaim"]["claimName"]
    assert claim == k8s_object("PersistentVolumeClaim")["metadata"]["name"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()


def token_path(container: dict[str, Any], pod: dict[str, Any]) -> str:
    """Where the container sees key ``token`` of the Secret riskmon-token."""
    volumes = {v["name"]: v for v in pod["volumes"]}
    for mount in container["volumeMounts"]:
        secret = volumes.get(mount["name"], {}).get("secret")  # claims are not pod volumes
        if secret and secret["secretName"] == "riskmon-token":
            assert mount.get("readOnly") is True
            (item,) = [i for i in secret["items"] if i["key"] == "token"]
            return f"{mount['mountPath']}/{item['path']}"
    raise AssertionError("the Secret riskmon-token is not mounted")


def service_monitor_token(monitor: dict[str, Any]) -> dict[str, Any]:
    """The bearer credentials the ServiceMonitor's endpoint sends."""
    (endpoint,) = monitor["spec"]["endpoints"]
    authorization: dict[str, Any] = endpoint["authorization"]
    assert authorization["type"] == "Bearer"
    return dict(authorization["credentials"])


def test_k8s_service_and_service_monitor_select_riskmon() -> None:
    service = k8s_object("Service")
    monitor = k8s_object("ServiceMonitor")
    pod_labels = k8s_object("Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["metadata"]["name"] == "riskmon"  # becomes job="riskmon", used by the rules
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert endpoint["interval"] == "5s"
    assert service_monitor_token(monitor) == {"name": "riskmon-token", "key": "token"}


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    manifests = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == manifests


# --- docker, compose, systemd ----------------------------------------------------------


def test_compose_references_existing_files() -> None:
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {"riskmon", "prometheus", "alertmanager", "grafana"}
    build = services["riskmon"]["build"]
    context = (DEPLOY / build["context"]).resolve()
    assert context == REPO
    assert (context / build["dockerfile"]).is_file()
    missing = []
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith((".", "/")) and not (DEPLOY / source).exists():
                missing.append(f"{name}: {source}")
            elif not source.startswith((".", "/")):
                assert source in compose["volumes"], f"{name}: undeclared volume {source}"
        for secret in service.get("secrets", []):
            assert secret in compose["secrets"], f"{name}: undeclared secret {secret}"
    assert missing == []


def test_compose_mounts_match_the_configs() -> None:
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())

    def mounts(service: str) -> dict[str, str]:
        pairs = (v.split(":")[:2] for v in compose["services"][service]["volumes"])
        return {target: source for source, target in pairs}

    assert mounts("riskmon")["/etc/riskmon/riskmon.toml"] == "./docker/riskmon.toml"
    assert mounts("prometheus")["/etc/prometheus/rules"] == "./prometheus/rules"
    assert mounts("alertmanager")["/etc/alertmanager/templates"] == "./alertmanager/templates"
    provider = yaml.safe_load((DEPLOY / "grafana/provisioning/dashboards/riskmon.yml").read_text())
    (dashboards,) = provider["providers"]
    assert mounts("grafana")[dashboards["options"]["path"]] == "./grafana/dashboards"

    def secrets(service: str) -> set[str]:
        return {f"/run/secrets/{name}" for name in compose["services"][service].get("secrets", [])}

    alertmanager = (DEPLOY / "alertmanager" / "alertmanager.yml").read_text()
    assert set(re.findall(r"_file: (\S+)", alertmanager)) == secrets("alertmanager")
    token_file = load_config(CONTAINER_CONFIG, environ={}).server.token_file
    assert secrets("riskmon") == {token_file}
    prometheus = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in prometheus["scrape_configs"]}
    assert secrets("prometheus") == {jobs["riskmon"]["authorization"]["credentials_file"]}


def test_dockerfile_copies_existing_files_and_runs_as_non_root() -> None:
    """Every package of the distribution is copied and let through the build context."""
    text = (DEPLOY / "docker" / "Dockerfile").read_text()
    packages = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    ignore = (DEPLOY / "docker" / "Dockerfile.dockerignore").read_text().splitlines()
    for package in (p.rstrip("*") for p in packages["packages"]["find"]["include"]):
        assert f"COPY {package} ./{package}" in text, package
        assert f"!{package}/" in ignore, package
    assert "FROM python:3.11-slim" in text
    assert re.search(r"^USER (?!root|0\b)\S+", text, re.MULTILINE)
    assert "EXPOSE 9464" in text
    assert re.search(r"HEALTHCHECK .*\n.*urllib.*/healthz", text)
    assert "pip install ." in text
    for line in re.findall(r"^COPY (?!--from)(.+)$", text, re.MULTILINE):
        for source in line.split()[:-1]:
            assert (REPO / source).exists(), source


def test_systemd_unit() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read_string((DEPLOY / "systemd" / "riskmon.service").read_text())
    service = unit["Service"]
    assert service["Type"] == "notify"
    assert service["WatchdogSec"] == "30"
    assert service["NotifyAccess"] == "main"
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert service["ExecStart"] == (
        "/opt/riskmon/.venv/bin/riskmon run --config /etc/riskmon/riskmon.toml"
    )
    assert service["User"] not in {"root", "0"}
    assert service["NoNewPrivileges"] == "yes"
    assert service["ProtectSystem"] == "strict"
    assert service["StateDirectory"] == "riskmon"
    assert "MemoryDenyWriteExecute" not in service  # numba's JIT needs W+X pages


# --- alertmanager and grafana ----------------------------------------------------------


def test_alertmanager_routes_by_severity_and_inhibits_warnings() -> None:
    config = yaml.safe_load((DEPLOY / "alertmanager" / "alertmanager.yml").read_text())
    receivers = {r["name"]: r for r in config["receivers"]}
    assert "routing_key_file" in receivers["pager"]["pagerduty_configs"][0]
    assert "api_url_file" in receivers["chat"]["slack_configs"][0]
    inhibit = config["inhibit_rules"][0]
    assert inhibit["source_matchers"] == ['severity="critical"']
    assert inhibit["target_matchers"] == ['severity="warning"', 'alertname!="RiskmonRuleFiring"']
    assert "rule" in config["route"]["group_by"]
    assert "alertname" not in inhibit["equal"]
    assert {"portfolio", "venue"} <= set(inhibit["equal"])
    categories = {a["labels"]["category"] for a in alerting_rules()}
    assert "category" in inhibit["equal"]
    assert len(categories) > 1


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (["severity=critical", "alertname=RiskmonDown"], "pager"),
        (["severity=warning", "alertname=RiskmonFeedStale"], "chat"),
        (["alertname=Unlabelled"], "chat"),
        (["severity=critical", "alertname=RiskmonRuleFiring", "rule=main-var-99-limit"], "pager"),
        (["severity=info", "alertname=RiskmonRuleFiring", "rule=x"], "chat"),
        (["severity=critical", "alertname=market-correlation-spike"], "pager"),  # riskmon's sink
    ],
)
def test_amtool_routes(labels: list[str], receiver: str) -> None:
    amtool = shutil.which("amtool")
    if amtool is None:
        pytest.skip("amtool is not installed (make system-deps)")
    config = DEPLOY / "alertmanager" / "alertmanager.yml"
    result = subprocess.run(
        [amtool, "config", "routes", "test", f"--config.file={config}", *labels],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == receiver


def test_dashboard_variables_datasources_and_panels() -> None:
    board = dashboard()
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert variables["portfolio"]["type"] == "query"
    panels = list(dashboard_panels(board))
    assert len({p["id"] for p in panels}) == len(panels), "duplicate panel ids"
    for panel in panels:
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]
    exprs = "\n".join(dashboard_exprs().values())
    assert '$portfolio"' in exprs
    assert "histogram_quantile(" in exprs
    assert "riskmon_tick_to_snapshot_latency_seconds_bucket" in exprs


def test_dashboard_correlation_matrix_uses_grouping_to_matrix() -> None:
    (matrix,) = [p for p in dashboard_panels() if p["title"].startswith("Correlation matrix")]
    assert matrix["type"] == "table"
    (target,) = matrix["targets"]
    assert target["expr"] == 'riskmon_correlation{horizon="fast"}'
    assert target["format"] == "table"
    assert target["instant"] is True
    (transformation,) = matrix["transformations"]
    assert transformation["id"] == "groupingToMatrix"
    assert transformation["options"]["rowField"] == "a"
    assert transformation["options"]["columnField"] == "b"


def test_dashboard_panels_do_not_overlap() -> None:
    cells: dict[tuple[int, int], str] = {}
    for panel in dashboard_panels():
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["title"]


def test_grafana_provisioning_files() -> None:
    datasources = yaml.safe_load(
        (DEPLOY / "grafana/provisioning/datasources/prometheus.yml").read_text()
    )
    assert datasources["apiVersion"] == 1
    (source,) = datasources["datasources"]
    assert source["type"] == "prometheus"
    assert source["url"] == "http://prometheus:9090"
    provider = yaml.safe_load((DEPLOY / "grafana/provisioning/dashboards/riskmon.yml").read_text())
    assert provider["apiVersion"] == 1
    assert provider["providers"][0]["type"] == "file"
