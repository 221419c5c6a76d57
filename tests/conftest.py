"""Test environment: Airflow configured for unit tests, and the Graph emulator as fixtures.

The environment variables must be set before anything imports airflow.
"""

from __future__ import annotations

import functools
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_AIRFLOW_HOME = tempfile.mkdtemp(prefix="fb_async_airflow_home_")
os.environ["AIRFLOW_HOME"] = _AIRFLOW_HOME
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "True"
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
_REPO = Path(__file__).resolve().parent.parent


def _dags_folder() -> str:
    """dag.test() only runs DAGs from the DAGs folder: link the tests' DAGs and the examples into one."""
    folder = Path(_AIRFLOW_HOME) / "dags"
    folder.mkdir()
    for source in [*(_REPO / "tests" / "dags").glob("*.py"), *(_REPO / "dags_examples").glob("*.py")]:
        (folder / source.name).symlink_to(source)
    return str(folder)


os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = _dags_folder()
os.environ.setdefault("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{_AIRFLOW_HOME}/airflow.db")

import pytest  # noqa: E402

from airflow_fb_async.emulator import GraphEmulator  # noqa: E402
from tests import secrecy  # noqa: E402
from tests.emu_admin import EmulatorAdmin  # noqa: E402

# A long, distinctive token: secrecy tests scan every log, exception and XCom for it.
TEST_TOKEN = "EAATESTtok3n-Zq8VvX2-secret-do-not-leak-7f3c9a1b2d4e6f80"
CONN_ENV = "AIRFLOW_CONN_FACEBOOK_GRAPH_DEFAULT"

secrecy.install(TEST_TOKEN)
pytest_runtest_makereport = secrecy.pytest_runtest_makereport
pytest_sessionfinish = secrecy.pytest_sessionfinish
pytest_terminal_summary = secrecy.pytest_terminal_summary

# Fast-clock settings shared by the hook (conn extra) and the emulator (config).
FAST_REGAIN_UNIT_SECONDS = 0.05


@pytest.fixture(scope="session")
def emulator() -> Iterator[GraphEmulator]:
    with GraphEmulator(port=0, tokens=[TEST_TOKEN]) as emu:
        yield emu


@pytest.fixture
def emu(emulator: GraphEmulator) -> EmulatorAdmin:
    admin = EmulatorAdmin(emulator.url)
    admin.reset()
    return admin


def conn_json(url: str, token: str = TEST_TOKEN, **extra: object) -> str:
    base_extra: dict[str, object] = {
        "api_version": "v25.0",
        "max_retries": 5,
        "backoff_base": 0.01,
        "backoff_max": 0.2,
        "regain_unit_seconds": FAST_REGAIN_UNIT_SECONDS,
    }
    base_extra.update(extra)
    return json.dumps({"conn_type": "facebook_graph", "host": url, "password": token, "extra": base_extra})


@pytest.fixture
def graph_conn(emu: EmulatorAdmin, monkeypatch: pytest.MonkeyPatch) -> EmulatorAdmin:
    emu.config(regain_unit_seconds=FAST_REGAIN_UNIT_SECONDS)
    monkeypatch.setenv(CONN_ENV, conn_json(emu.url))
    return emu


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """Create the SQLite metadata DB once per session (needed by dag.test())."""
    from airflow.utils import db

    db.initdb()


@functools.cache
def dag_bag() -> Any:
    """Every DAG of the tests' DAGs folder (tests/dags and dags_examples), parsed once."""
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])


def run_dag(dag_id: str, **conf: object) -> Any:
    """Run a DAG from the DAGs folder through dag.test() (triggers run inline); return the DagRun.

    Needs the ``airflow_db`` fixture.
    """
    bag = dag_bag()
    assert not bag.import_errors, bag.import_errors
    dag = bag.get_dag(dag_id)
    assert dag is not None, f"{dag_id} not found in {os.environ['AIRFLOW__CORE__DAGS_FOLDER']}"
    return dag.test(run_conf=conf or None)


# DAG files live in tests/dags for dag.test(); they are not test modules.
collect_ignore_glob = ["dags/*"]
