# riskmon developer commands. `make test` and `make run` work on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
CONFIG ?= config/riskmon.toml

.PHONY: install lint typecheck test run demo replay-example bench clean system-deps deploy-check

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

lint: install
	$(VENV)/bin/ruff check monitor feeds alerts bus service tests benchmarks
	$(VENV)/bin/ruff format --check monitor feeds alerts bus service tests benchmarks
	$(VENV)/bin/lint-imports

typecheck: install
	$(VENV)/bin/mypy --strict -p monitor -p feeds -p alerts -p bus -p service

test: lint typecheck system-deps deploy-check
	$(VENV)/bin/pytest

# Debian's Prometheus 2.42 (prometheus, promtool) and Alertmanager 0.25
# (prometheus-alertmanager, amtool), for deploy-check and tests/integration/test_prometheus.py,
# NATS 2.9 (nats-server) for tests/integration/test_bus.py and benchmarks/bus_throughput.py,
# and Chromium (chromium) for tests/integration/test_report_browser.py.
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)

system-deps:
	@if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null \
		|| ! command -v prometheus-alertmanager >/dev/null || ! command -v amtool >/dev/null \
		|| ! { command -v nats-server || test -x /usr/sbin/nats-server; } >/dev/null \
		|| ! command -v chromium >/dev/null; then \
		$(SUDO) apt-get update && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
			prometheus prometheus-alertmanager nats-server chromium; \
	fi

# --syntax-only: the scrape configs name riskmon's token file, which exists only in the
# container (/run/secrets/riskmon_token); the rule files are checked on their own below.
deploy-check: system-deps
	promtool check config --syntax-only deploy/prometheus/prometheus.yml
	promtool check config --syntax-only deploy/prometheus/prometheus-bus.yml
	promtool check rules deploy/prometheus/rules/*.yml
	promtool test rules deploy/prometheus/tests/*.yml
	amtool check-config deploy/alertmanager/alertmanager.yml
	SERVER_NAME=check "$$(command -v nats-server || echo /usr/sbin/nats-server)" -t -c deploy/nats/nats.conf

run: install
	$(VENV)/bin/riskmon run --config $(CONFIG)

demo: install
	$(VENV)/bin/riskmon demo

replay-example: install
	$(VENV)/bin/riskmon replay ../shared/data/market/binance_spot_5m_2025H1.parquet \
		--config config/example-replay.toml --out out/replay-2025H1

# Thirteen benchmarks (about 19 minutes on 2 cores), then the summary table; see benchmarks/README.md.
bench: install system-deps
	$(PY) -m benchmarks.engine_throughput
	$(PY) -m benchmarks.live_throughput
	$(PY) -m benchmarks.latency
	$(PY) -m benchmarks.memory
	$(PY) -m benchmarks.metrics_scrape
	$(PY) -m benchmarks.bus_throughput
	$(PY) -m benchmarks.bus_catchup
	$(PY) -m benchmarks.replay_throughput
	$(PY) -m benchmarks.kernel_throughput
	$(PY) -m benchmarks.option_var
	$(PY) -m benchmarks.noise_bias
	$(PY) -m benchmarks.price_kind
	$(PY) -m benchmarks.report

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache out
