# One-command entry points. A fresh machine needs only python3 (>= 3.11) and network access to PyPI.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install lint typecheck pytest test compat compat-quick demo demo-all chaos bench clean

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

clean:
	rm -rf $(VENV) .compat .pytest_cache .mypy_cache .ruff_cache
