# riskmon developer commands. `make test` and `make run` work on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
CONFIG ?= config/riskmon.toml

.PHONY: install lint typecheck test run demo replay-example bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

lint: install
	$(VENV)/bin/ruff check monitor feeds alerts tests benchmarks
	$(VENV)/bin/ruff format --check monitor feeds alerts tests benchmarks
	$(VENV)/bin/lint-imports

typecheck: install
	$(VENV)/bin/mypy --strict -p monitor -p feeds -p alerts

test: lint typecheck
	$(VENV)/bin/pytest

run: install
	$(VENV)/bin/riskmon run --config $(CONFIG)

demo: install
	$(VENV)/bin/riskmon demo

replay-example: install
	$(VENV)/bin/riskmon replay ../shared/data/market/binance_spot_5m_2025H1.parquet \
		--config config/example-replay.toml --out out/replay-2025H1

bench: install
	$(PY) -m benchmarks.engine_throughput

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache out
