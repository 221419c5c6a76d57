"""Every example DAG imports cleanly and runs end to end (dag.test(), triggers inline) against the emulator.

Runs triggered from the CLI or REST API may have no logical date (Airflow 3), so ``{{ ds }}`` is
undefined there: the examples are run both with and without one.
"""

from __future__ import annotations

import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from airflow.dag_processing.dagbag import DagBag

from tests.conftest import TEST_TOKEN, dag_bag
from tests.emu_admin import EmulatorAdmin

EXAMPLES = Path(__file__).resolve().parent.parent / "dags_examples"
EXAMPLE_IDS = [
    "example_fb_async_ad_creation",
    "example_fb_batch_creatives",
    "example_fb_manage_sets",
    "example_fb_file_pipeline",
    "example_fb_insights_pipeline",
]
# None: a run with no logical date, as `airflow dags trigger` (no --logical-date) or the REST API make.
LOGICAL_DATES = [None, datetime(2026, 3, 1, tzinfo=UTC)]


def run_example(dag_id: str, logical_date: datetime | None) -> Any:
    """Run an example through dag.test() with this logical date (None: none at all); return the DagRun."""
    dag = dag_bag().get_dag(dag_id)
    assert dag is not None, dag_id
    return dag.test(logical_date=logical_date)


def run_date(run: Any) -> str:
    """The date the examples put in names: the logical date's, else the date the run was created for."""
    return str((run.logical_date or run.run_after).strftime("%Y-%m-%d"))


def test_examples_import_without_errors_or_warnings() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bag = DagBag(dag_folder=str(EXAMPLES))
    assert bag.import_errors == {}
    assert sorted(bag.dag_ids) == sorted(EXAMPLE_IDS)
    ours = [w for w in caught if "dags_examples" in str(w.filename) or "airflow_fb_async" in str(w.filename)]
    assert ours == [], [str(w.message) for w in ours]


@pytest.mark.usefixtures("airflow_db")
@pytest.mark.parametrize("logical_date", LOGICAL_DATES, ids=["no_logical_date", "logical_date"])
def test_ad_creation_example_creates_every_ad_once(
    graph_conn: EmulatorAdmin, logical_date: datetime | None
) -> None:
    run = run_example("example_fb_async_ad_creation", logical_date)
    assert run.state == "success"
    ads = graph_conn.objects("ad")
    assert len(ads) == 25
    assert len({ad["name"] for ad in ads}) == 25
    assert graph_conn.counters()["request_sets_created"] == 1
    assert TEST_TOKEN not in str(graph_conn.calls())
    date = run_date(run)
    assert [c["name"] for c in graph_conn.objects("campaign")] == [f"Demo campaign {date}"]
    (request_set,) = graph_conn.objects("async_request_set")
    assert request_set["name"].startswith(f"demo ads {date} ")


@pytest.mark.usefixtures("airflow_db")
def test_batch_creatives_example_builds_creative_from_uploaded_image(graph_conn: EmulatorAdmin) -> None:
    run = run_example("example_fb_batch_creatives", None)
    assert run.state == "success"
    assert len(graph_conn.objects("adimage")) == 1
    (creative,) = graph_conn.objects("adcreative")
    assert len(graph_conn.objects("ad")) == 3
    assert str(graph_conn.objects("adimage")[0]["hash"]) in str(creative)
    statuses = [c["status"] for c in graph_conn.calls()]
    assert 304 in statuses  # the read-back was served by a conditional GET


@pytest.mark.usefixtures("airflow_db")
@pytest.mark.parametrize("logical_date", LOGICAL_DATES, ids=["no_logical_date", "logical_date"])
def test_manage_sets_example_updates_and_cancels(
    graph_conn: EmulatorAdmin, logical_date: datetime | None
) -> None:
    graph_conn.config(async_pace=0)  # paused: the set is still running when the cancel comes
    run = run_example("example_fb_manage_sets", logical_date)
    assert run.state == "success"
    assert graph_conn.objects("campaign") == []  # canceled before any request ran
    counters = graph_conn.counters()
    assert counters["request_sets_created"] == 1
    (request_set,) = graph_conn.objects("async_request_set")
    assert request_set["name"] == f"bulk campaigns {run_date(run)} (canceled by example)"
    assert {k: n for k, n in request_set["counts"].items() if n} == {"CANCELED": 1000}
