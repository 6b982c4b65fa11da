# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
UV_VERSION := 0.13.9

# Every Airflow release we support; each has its lock, locks/airflow-<version>.txt, compiled by `make lock`.
AIRFLOW_VERSIONS := 2.11 3.0 3.1 3.2 3.3
NEWEST := 3.3

# The development venv: the newest Airflow with the package editable (lint, demo, bench, quick tests).
VENV  := .venv
BIN   := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

# What runs on which release: the unit suite and the example DAGs everywhere; the real-process
# end-to-end tests on the newest release and on 2.11 (the other end of the range); the browser test
# on the newest release (its UI is the one users get now).
MARKS_2.11 := not browser
MARKS_3.0  := not e2e and not browser
MARKS_3.1  := not e2e and not browser
MARKS_3.2  := not e2e and not browser
MARKS_3.3  :=

# The package as a user installs it (not editable) is rebuilt into a matrix venv when any of it changes.
PACKAGE_FILES := pyproject.toml $(shell find airflow_provider_taskstatus -type f -not -name '*.pyc' 2>/dev/null)

.PHONY: venv lint test test-fast demo emulator lock clean browser proxy bench scale matrix-venvs locks/airflow-%.txt-compile \
	$(addprefix test-,$(AIRFLOW_VERSIONS))

venv: $(STAMP)

$(STAMP): locks/airflow-$(NEWEST).txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(BIN)/uv pip install --quiet --python $(BIN)/python -r locks/airflow-$(NEWEST).txt
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	touch $@

# One venv per release: its lock, then the package built and installed like `pip install .`.
.venv-%/.installed-stamp: locks/airflow-%.txt $(PACKAGE_FILES) | $(STAMP)
	test -x .venv-$*/bin/python || $(PYTHON) -m venv .venv-$*
	$(BIN)/uv pip sync --quiet --python .venv-$*/bin/python locks/airflow-$*.txt
	rm -rf build  # setuptools would package stale files left there
	$(BIN)/uv pip install --quiet --python .venv-$*/bin/python --no-deps --reinstall-package airflow-provider-taskstatus .
	touch $@

matrix-venvs: $(foreach v,$(AIRFLOW_VERSIONS),.venv-$(v)/.installed-stamp)

# Headless Chromium from Debian's packages, for the browser test (needs root; does nothing once installed).
browser:
	bash scripts/install-browser.sh

# Debian's tinyproxy, the forward proxy of the network tests (needs root; does nothing once installed).
proxy:
	bash scripts/install-proxy.sh

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# The whole matrix, one release after the other (the end-to-end tests time real processes: not in parallel).
test: lint browser proxy $(addprefix test-,$(AIRFLOW_VERSIONS))
	@$(BIN)/python scripts/matrix_report.py $(foreach v,$(AIRFLOW_VERSIONS),test-results/airflow-$(v).xml)

# One release alone, e.g. `make test-2.11`.
$(addprefix test-,$(AIRFLOW_VERSIONS)): test-%: .venv-%/.installed-stamp
	@echo "=== Airflow $* ($(if $(MARKS_$*),-m '$(MARKS_$*)',all tests)) ==="
	TASKSTATUS_TEST_INSTALLED=1 .venv-$*/bin/pytest -q --import-mode=append -p no:cacheprovider \
		--junitxml=test-results/airflow-$*.xml $(if $(MARKS_$*),-m "$(MARKS_$*)") $(PYTEST_ARGS)

# Everything but the slow runs through Airflow (example DAGs, real processes, REST, browser), newest release.
test-fast: venv
	$(BIN)/pytest -q -m "not dags and not e2e and not api and not browser"

# 60 deferred + 10 poke-mode TrueWatch sensors on one key against the emulator's 20-a-minute budget, on
# real Airflow 3.3 processes with two triggerers (~10 min; see README "Request budgets").
scale: .venv-$(NEWEST)/.installed-stamp
	TASKSTATUS_SCALE=1 TASKSTATUS_TEST_INSTALLED=1 .venv-$(NEWEST)/bin/pytest -q -s --import-mode=append \
		-p no:cacheprovider --junitxml=test-results/scale.xml tests/e2e/test_budget_at_scale.py

demo: venv
	$(BIN)/python scripts/demo.py

emulator: venv
	$(BIN)/taskstatus-emulator --port 8765

# Our triggers against dbt Cloud's and the HTTP provider's on a TLS emulator, then the budget phase
# (~11 min; see benchmarks/README.md).
bench: venv
	$(BIN)/python -m benchmarks.run $(BENCH_ARGS)

# Official constraint files cannot be fetched here, so each lock is compiled with uv against its
# release's pin (locks/airflow-<version>.in; 2.11's also pins our lowest dependency bounds, so that they
# are tested). An older release resolves as it did shortly after it came out (AS_OF_<version>: packages
# uploaded after it are ignored, as its constraint file would have them), since later packages break
# them (3.2.2's task SDK with today's cadwyn, 3.0.6's with today's FastAPI). Exempt: common-compat (our
# floor is newer) and the test runner (the same pytest everywhere). The newest release resolves against
# today's packages: what a new install gets.
AS_OF_2.11 := 2026-03-19
AS_OF_3.0  := 2025-09-04
AS_OF_3.1  := 2026-03-20
AS_OF_3.2  := 2026-06-05
AS_OF_3.3  :=
AS_OF_EXEMPT := apache-airflow-providers-common-compat pytest pytest-asyncio

lock: venv
	for v in $(AIRFLOW_VERSIONS); do $(MAKE) --no-print-directory locks/airflow-$$v.txt-compile || exit 1; done

locks/airflow-%.txt-compile:
	$(BIN)/uv pip compile --quiet pyproject.toml --extra dev --python-version 3.11 -c locks/airflow-$*.in \
		-o locks/airflow-$*.txt $(if $(AS_OF_$*),--exclude-newer $(AS_OF_$*) \
		$(foreach p,$(AS_OF_EXEMPT),--exclude-newer-package $(p)=$(shell date -u +%Y-%m-%d)))

clean:
	rm -rf $(VENV) $(foreach v,$(AIRFLOW_VERSIONS),.venv-$(v)) test-results .airflow .pytest_cache .mypy_cache .ruff_cache
