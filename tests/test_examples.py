"""Every example DAG imports cleanly and runs end to end (dag.test(), triggers inline) against the emulator."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
from airflow.dag_processing.dagbag import DagBag

from tests.conftest import TEST_TOKEN, run_dag
from tests.emu_admin import EmulatorAdmin

EXAMPLES = Path(__file__).resolve().parent.parent / "dags_examples"
EXAMPLE_IDS = ["example_fb_async_ad_creation", "example_fb_batch_creatives", "example_fb_manage_sets"]


def test_examples_import_without_errors_or_warnings() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bag = DagBag(dag_folder=str(EXAMPLES))
    assert bag.import_errors == {}
    assert sorted(bag.dag_ids) == sorted(EXAMPLE_IDS)
    ours = [w for w in caught if "dags_examples" in str(w.filename) or "airflow_fb_async" in str(w.filename)]
    assert ours == [], [str(w.message) for w in ours]


@pytest.mark.usefixtures("airflow_db")
def test_ad_creation_example_creates_every_ad_once(graph_conn: EmulatorAdmin) -> None:
    run = run_dag("example_fb_async_ad_creation")
    assert run.state == "success"
    ads = graph_conn.objects("ad")
    assert len(ads) == 25
    assert len({ad["name"] for ad in ads}) == 25
    assert graph_conn.counters()["request_sets_created"] == 1
    assert TEST_TOKEN not in str(graph_conn.calls())


@pytest.mark.usefixtures("airflow_db")
def test_batch_creatives_example_builds_creative_from_uploaded_image(graph_conn: EmulatorAdmin) -> None:
    run = run_dag("example_fb_batch_creatives")
    assert run.state == "success"
    assert len(graph_conn.objects("adimage")) == 1
    (creative,) = graph_conn.objects("adcreative")
    assert len(graph_conn.objects("ad")) == 3
    assert str(graph_conn.objects("adimage")[0]["hash"]) in str(creative)
    statuses = [c["status"] for c in graph_conn.calls()]
    assert 304 in statuses  # the read-back was served by a conditional GET


@pytest.mark.usefixtures("airflow_db")
def test_manage_sets_example_updates_and_cancels(graph_conn: EmulatorAdmin) -> None:
    graph_conn.config(async_pace=50)  # slow enough that the set is still running when cancel comes
    run = run_dag("example_fb_manage_sets")
    assert run.state == "success"
    campaigns = graph_conn.objects("campaign")
    assert 0 < len(campaigns) < 1000  # some ran before the cancel, the rest never did
    counters = graph_conn.counters()
    assert counters["request_sets_created"] == 1
