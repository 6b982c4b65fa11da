# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
UV_VERSION := 0.13.9

.PHONY: venv lint test test-fast demo emulator lock clean

venv: $(STAMP)

# The lock pins every package of the development and test environment.
$(STAMP): requirements-dev.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(BIN)/uv pip install --quiet --python $(BIN)/python -r requirements-dev.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	touch $@

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint
	$(BIN)/pytest -q

# Everything but the slow runs through Airflow (example DAGs, real processes).
test-fast: venv
	$(BIN)/pytest -q -m "not dags and not e2e"

demo: venv
	$(BIN)/python scripts/demo.py

emulator: venv
	$(BIN)/taskstatus-emulator --port 8765

# Our triggers against dbt Cloud's and the HTTP provider's on a TLS emulator (~7 min; see benchmarks/README.md).
.PHONY: bench
bench: venv
	$(BIN)/python -m benchmarks.run $(BENCH_ARGS)

lock: venv
	$(BIN)/uv pip compile pyproject.toml --extra dev --python-version 3.11 -o requirements-dev.lock

clean:
	rm -rf $(VENV) .airflow .pytest_cache .mypy_cache .ruff_cache
