"""deploy/ for the split roles: compose, k8s and Prometheus files agree, with riskmon too."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.config.loading import load_config
from service.roles import parse_shard, select
from tests.natsserver import BINARY
from tests.unit.deploy.test_deploy import (
    DEPLOY,
    load_yaml_documents,
    service_monitor_token,
    token_path,
)

BUS_K8S = DEPLOY / "k8s" / "bus"
BUS_CONFIG = DEPLOY / "docker" / "riskmon-bus.toml"
COMPOSE = DEPLOY / "docker-compose.bus.yml"


def bus_objects() -> dict[tuple[str, str], dict[str, Any]]:
    """Every object of deploy/k8s/bus by (kind, name)."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted(BUS_K8S.glob("*.yaml")):
        for doc in load_yaml_documents(path):
            if doc and doc.get("kind") != "Kustomization":
                found[(doc["kind"], doc["metadata"]["name"])] = doc
    return found


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


def test_the_bus_config_is_valid_and_the_configmap_holds_it() -> None:
    config = load_config(BUS_CONFIG, environ={})
    assert len(config.portfolios) >= 2
    assert config.bus.replicas == 3
    configmap = bus_objects()[("ConfigMap", "riskmon-bus-config")]
    assert configmap["data"]["riskmon.toml"] == BUS_CONFIG.read_text(), (
        "deploy/k8s/bus/configmap.yaml must hold deploy/docker/riskmon-bus.toml verbatim"
    )


def test_kustomization_lists_every_bus_manifest() -> None:
    kustomization = yaml.safe_load((BUS_K8S / "kustomization.yaml").read_text())
    manifests = {p.name for p in BUS_K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == manifests


def test_engine_workers_cover_every_portfolio_once() -> None:
    """The StatefulSet's replicas and the shard count of its command agree, shards non-empty."""
    config = load_config(BUS_CONFIG, environ={})
    engine = bus_objects()[("StatefulSet", "riskmon-engine")]
    replicas = engine["spec"]["replicas"]
    (container,) = engine["spec"]["template"]["spec"]["containers"]
    command = " ".join(container["command"] + container["args"])
    match = re.search(r'--shard "\$\{HOSTNAME##\*-\}/(\d+)"', command)
    assert match is not None, command
    assert int(match.group(1)) == replicas
    held = [select(config, shard=(i, replicas)).portfolios for i in range(replicas)]
    assert sorted(p for shard in held for p in shard) == sorted(p.name for p in config.portfolios)
    workers = {name: s for name, s in compose()["services"].items() if name.startswith("engine-")}
    shards = {s["command"][s["command"].index("--shard") + 1] for s in workers.values()}
    assert shards == {f"{i}/{len(workers)}" for i in range(len(workers))}
    for shard in shards:
        index, count = parse_shard(shard)
        assert select(config, shard=(index, count)).portfolios


def test_one_feeds_process_and_every_role_scraped_as_job_riskmon() -> None:
    objects = bus_objects()
    feeds = objects[("Deployment", "riskmon-feeds")]
    assert feeds["spec"]["replicas"] == 1
    assert feeds["spec"]["strategy"]["type"] == "Recreate"
    monitor = objects[("ServiceMonitor", "riskmon-bus")]
    selector = monitor["spec"]["selector"]["matchLabels"]
    services = [o for (kind, _), o in objects.items() if kind == "Service"]
    scraped = [s for s in services if selector.items() <= s["metadata"]["labels"].items()]
    assert {s["metadata"]["name"] for s in scraped} == {"riskmon-feeds", "riskmon-engine"}
    for service in scraped:
        assert service["metadata"]["labels"][monitor["spec"]["jobLabel"]] == "riskmon"
    prometheus = yaml.safe_load((DEPLOY / "prometheus" / "prometheus-bus.yml").read_text())
    jobs = {job["job_name"]: job for job in prometheus["scrape_configs"]}
    targets = set(jobs["riskmon"]["static_configs"][0]["targets"])
    roles = {n for n, s in compose()["services"].items() if "--role" in s.get("command", [])}
    assert targets == {f"{name}:9464" for name in roles}
    assert service_monitor_token(monitor) == {"name": "riskmon-token", "key": "token"}


def test_every_role_requires_the_token_prometheus_sends() -> None:
    """Each role listens beyond loopback with bearer auth from the mounted secret file; the
    compose Prometheus and the ServiceMonitor send that token."""
    token_file = load_config(BUS_CONFIG, environ={}).server.token_file
    assert load_config(BUS_CONFIG, environ={}).server.auth == "bearer"
    objects = bus_objects()
    for kind, name in (("Deployment", "riskmon-feeds"), ("StatefulSet", "riskmon-engine")):
        pod = objects[(kind, name)]["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert token_path(container, pod) == token_file, name
    prometheus = yaml.safe_load((DEPLOY / "prometheus" / "prometheus-bus.yml").read_text())
    jobs = {job["job_name"]: job for job in prometheus["scrape_configs"]}
    assert jobs["riskmon"]["authorization"] == {"type": "Bearer", "credentials_file": token_file}
    services = compose()["services"]
    for name in ("feeds", "engine-0", "engine-1", "prometheus"):
        assert services[name]["secrets"] == ["riskmon_token"], name
    assert token_file == "/run/secrets/riskmon_token"
    assert "riskmon_token" in compose()["secrets"]


def test_pods_reach_nats_through_its_service() -> None:
    objects = bus_objects()
    nats = objects[("StatefulSet", "nats")]
    assert nats["spec"]["replicas"] == 3
    assert objects[("Service", "nats")]["spec"]["ports"][0]["port"] == 4222
    for kind, name in (("Deployment", "riskmon-feeds"), ("StatefulSet", "riskmon-engine")):
        (container,) = objects[(kind, name)]["spec"]["template"]["spec"]["containers"]
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["RISKMON_BUS__URL"] == "nats://nats:4222"
        volumes = objects[(kind, name)]["spec"]["template"]["spec"]["volumes"]
        config = next(v for v in volumes if v["name"] == "config")
        assert config["configMap"]["name"] == "riskmon-bus-config"


def test_compose_references_existing_files_and_volumes() -> None:
    data = compose()
    for name, service in data["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name}: {source}"
            else:
                assert source in data["volumes"], f"{name}: undeclared volume {source}"
    assert {"nats-1", "nats-2", "nats-3", "feeds", "engine-0", "engine-1"} <= set(data["services"])


@pytest.mark.parametrize("source", ["compose", "k8s"])
def test_nats_configs_are_valid(source: str, tmp_path: Path) -> None:
    if BINARY is None:
        pytest.skip("nats-server is not installed (Debian package nats-server; make test)")
    if source == "compose":
        path = DEPLOY / "nats" / "nats.conf"
    else:
        path = tmp_path / "nats.conf"
        path.write_text(bus_objects()[("ConfigMap", "nats-config")]["data"]["nats.conf"])
    result = subprocess.run(
        [BINARY, "-t", "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        env={"SERVER_NAME": "check", "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
