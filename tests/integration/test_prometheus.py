"""A real Prometheus (Debian's /usr/bin/prometheus) accepts every PromQL expression of deploy/.

Fixtures to reuse: ``prometheus_server`` gives ``prometheus_server(targets)``, a context
manager that starts Prometheus on a free loopback port scraping ``targets`` as job riskmon
and yields its base URL (``run_prometheus`` also loads rule files and sends alerts to an
Alertmanager); ``query`` and ``wait_until`` talk to it. Skipped without the ``prometheus``
binary (``make system-deps`` installs it). tests/integration/test_monitoring.py runs it
against `riskmon demo`.
"""

from __future__ import annotations

import contextlib
import functools
import json
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.grafana import dashboard_variables, interpolate
from tests.unit.deploy.test_deploy import dashboard, dashboard_exprs, rule_exprs

STARTUP_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
HTTP_TIMEOUT_S = 5.0

# Two values per dashboard variable, so Grafana writes each as a regex alternation "(a|b)".
GRAFANA_VALUES = {
    "portfolio": ["main", "hedge.book"],
    "account": ["demo-perps", "desk"],
    "confidence": ["0.95", "0.99"],
}

PrometheusServer = Callable[[Sequence[str]], AbstractContextManager[str]]


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def http_json(url: str, timeout: float = HTTP_TIMEOUT_S) -> tuple[int, Any]:
    """GET ``url``; the status and decoded JSON body (also for 4xx/5xx answers)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        with error:
            body = error.read()
        return error.code, json.loads(body) if body else None


def query(base_url: str, expr: str, at: float | None = None) -> dict[str, Any]:
    """Run an instant query; Prometheus' whole JSON answer (``status``, ``data`` or ``error``)."""
    params = {"query": expr} | ({"time": f"{at:.3f}"} if at is not None else {})
    _, body = http_json(f"{base_url}/api/v1/query?{urllib.parse.urlencode(params)}")
    answer: dict[str, Any] = body
    return answer


def wait_until(
    condition: Callable[[], bool], timeout: float, what: str, interval: float = 0.2
) -> None:
    """Poll ``condition`` until it holds; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def _ready(base_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base_url}/-/ready", timeout=1.0) as response:
            return bool(response.status == 200)
    except OSError:  # refused, reset, timeout, or HTTPError 503 while starting
        return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Terminate, then kill after STOP_TIMEOUT_S; always reaped."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_TIMEOUT_S)


def scrape_config(
    targets: Sequence[str],
    scrape_interval: str = "1s",
    rule_files: Sequence[str] = (),
    alertmanager: str | None = None,
) -> dict[str, Any]:
    """A Prometheus config scraping ``targets`` as job riskmon, evaluating ``rule_files`` and
    sending alerts to ``alertmanager`` (host:port) when given."""
    config: dict[str, Any] = {
        "global": {"scrape_interval": scrape_interval, "evaluation_interval": scrape_interval},
        "scrape_configs": [
            {
                "job_name": "riskmon",
                "scrape_interval": scrape_interval,
                "scrape_timeout": scrape_interval,
                "static_configs": [{"targets": list(targets)}],
            }
        ],
    }
    if rule_files:
        config["rule_files"] = list(rule_files)
    if alertmanager is not None:
        config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]}
    return config


@contextlib.contextmanager
def run_prometheus(
    targets: Sequence[str],
    *,
    binary: str,
    scrape_interval: str = "1s",
    startup_timeout: float = STARTUP_TIMEOUT_S,
    attempts: int = 3,
    rule_files: Sequence[str] = (),
    alertmanager: str | None = None,
) -> Iterator[str]:
    """Run Prometheus on 127.0.0.1 with temporary storage; yield its base URL; stop it.

    A port taken between choosing and binding it makes Prometheus exit at once; that is
    retried on another port up to ``attempts`` times.
    """
    with tempfile.TemporaryDirectory(prefix="riskmon-prometheus-") as tmp:
        config = Path(tmp) / "prometheus.yml"
        text = scrape_config(targets, scrape_interval, rule_files, alertmanager)
        config.write_text(yaml.safe_dump(text))
        log_path = Path(tmp) / "prometheus.log"
        for _ in range(attempts):
            port = free_port()
            base_url = f"http://127.0.0.1:{port}"
            with log_path.open("wb") as log:
                process = subprocess.Popen(
                    [
                        binary,
                        f"--config.file={config}",
                        f"--storage.tsdb.path={Path(tmp) / 'data'}",
                        f"--web.listen-address=127.0.0.1:{port}",
                        "--log.level=warn",
                    ],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
                try:
                    deadline = time.monotonic() + startup_timeout
                    while process.poll() is None and not _ready(base_url):
                        if time.monotonic() > deadline:
                            pytest.fail(
                                f"prometheus not ready after {startup_timeout:.0f} s:\n"
                                + log_path.read_text(errors="replace")
                            )
                        time.sleep(0.1)
                    if process.poll() is None:
                        yield base_url
                        return
                finally:
                    _stop(process)
            if "address already in use" not in log_path.read_text(errors="replace"):
                break
        pytest.fail("prometheus exited at start:\n" + log_path.read_text(errors="replace"))


@pytest.fixture
def prometheus_server() -> PrometheusServer:
    """``prometheus_server(targets)``: a context manager yielding a running Prometheus' URL."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip(
            "the prometheus binary is not installed "
            "(Debian: apt-get install prometheus, or `make system-deps`)"
        )
    return functools.partial(run_prometheus, binary=binary)


def concrete(expr: str) -> str:
    """``expr`` with Grafana's variables interpolated as Grafana does, two values each."""
    expr = interpolate(expr, dashboard_variables(dashboard(), GRAFANA_VALUES))
    assert "$" not in expr, f"a Grafana variable without a test value in: {expr}"
    return expr


def test_every_deploy_expression_is_valid_promql(prometheus_server: PrometheusServer) -> None:
    """Rules and dashboard parse and evaluate (empty results are fine: nothing is scraped)."""
    exprs = {f"rules {k}": v for k, v in rule_exprs().items()}
    exprs.update({f"dashboard {k}": concrete(v) for k, v in dashboard_exprs().items()})
    assert len(exprs) > 40
    # Nothing listens on the target: its scrapes fail, which is all this test needs.
    target = f"127.0.0.1:{free_port()}"
    with prometheus_server([target]) as base_url:

        def target_known() -> bool:
            _, body = http_json(f"{base_url}/api/v1/targets")
            active = body["data"]["activeTargets"]
            return any(t["labels"].get("instance") == target for t in active)

        wait_until(target_known, STARTUP_TIMEOUT_S, f"target {target} in /api/v1/targets")
        failures = {}
        for where, expr in exprs.items():
            answer = query(base_url, expr)
            if answer.get("status") != "success":
                failures[where] = f"{answer.get('errorType')}: {answer.get('error')}\n{expr}"
        assert failures == {}
        # And a broken expression is reported as such, so the check above means something.
        broken = query(base_url, "sum by (venue (riskmon_up)")
        assert broken["status"] == "error"
        assert broken["errorType"] == "bad_data"
