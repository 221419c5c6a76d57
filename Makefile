# One-command entry points. A fresh machine needs only python3 (>= 3.11) and network access to PyPI.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install lint typecheck pytest test stress demo demo-all chaos bench clean

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

# The whole suite: lint, types, tests (including the quick chaos profile).
test: lint typecheck pytest

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

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .stress
