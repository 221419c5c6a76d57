# One-command entry points. A fresh machine needs only python3 (>= 3.11) and network access to PyPI.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install lint typecheck pytest test compat compat-quick stress demo demo-all chaos bench clean e2e

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[test]"
	@touch $(STAMP)

install: $(STAMP)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: install
	$(VENV)/bin/mypy

pytest: install
	$(PY) scripts/run_pytest.py $(PYTEST_ARGS)

# The whole suite: lint, types, tests (including the quick chaos profile), and the built wheel on
# Airflow 2.11 and on Python 3.10 / 3.13 (one example each; venvs cached under .compat/).
test: lint typecheck pytest compat-quick

# The built wheel in fresh venvs: Airflow 2.11 (with a test subset), Python 3.10 and 3.13 (Airflow
# 3.3), every example DAG through `airflow dags test` against the emulator. Prints a table.
compat: install
	$(PY) scripts/compat_check.py

compat-quick: install
	$(PY) scripts/compat_check.py --quick

# The pytest suite N times in a row beside two CPU-bound processes; prints one line per run and
# `k/N passed`, fails unless all passed. Logs in .stress/. A subset: STRESS_ARGS="tests/triggers".
N ?= 10
STRESS_ARGS ?=
stress: install
	$(PY) scripts/stress.py -n $(N) $(STRESS_ARGS)

# Start the emulator, run the main example DAG with `airflow dags test`, print a summary.
demo: install
	$(PY) scripts/demo.py

demo-all: install
	$(PY) scripts/demo.py --all

# The long chaos profile.
chaos: install
	CHAOS_PROFILE=long $(PY) scripts/run_pytest.py tests/chaos -s

bench: install
	$(PY) benchmarks/emulator_load.py
	$(PY) benchmarks/batch.py
	$(PY) benchmarks/results.py
	$(PY) benchmarks/file_pipeline.py
	$(PY) benchmarks/trigger_loop.py
	$(PY) benchmarks/insights.py
	$(PY) benchmarks/batch_journal.py

# A real deployment on this machine (PostgreSQL, Redis, Celery, two triggerers, two workers), with kills.
# Its own venv (.venv-e2e) so the test venv stays lean; system packages via apt-get when missing.
E2E_VENV := .venv-e2e
E2E_STAMP := $(E2E_VENV)/.installed
E2E_PACKAGES := apache-airflow-providers-celery psycopg2-binary asyncpg

$(E2E_STAMP): pyproject.toml constraints.txt constraints-e2e.txt
	@test -x $(E2E_VENV)/bin/python || $(PYTHON) -m venv $(E2E_VENV)
	$(E2E_VENV)/bin/python -m pip install --quiet --disable-pip-version-check \
		-c constraints.txt -c constraints-e2e.txt -e . $(E2E_PACKAGES)
	@touch $(E2E_STAMP)

e2e: $(E2E_STAMP)
	scripts/e2e/system_deps.sh
	$(E2E_VENV)/bin/python scripts/e2e/run.py $(E2E_ARGS)

clean:
	rm -rf $(VENV) .compat .pytest_cache .mypy_cache .ruff_cache .stress
