"""AsyncRequestSetSensor: validation, deferral, poke path, execute_complete, dag.test() pipelines."""

from __future__ import annotations

import json
import logging
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from airflow_fb_async._compat import TaskDeferred
from airflow_fb_async.exceptions import AsyncRequestSetError, GraphInputError
from airflow_fb_async.sensors.async_request_set import AsyncRequestSetSensor
from airflow_fb_async.triggers.async_request_set import AsyncRequestSetTrigger
from airflow_fb_async.waiting.events import make_event
from tests.conftest import TEST_TOKEN, run_dag
from tests.triggers.test_async_request_set import all_logs, create_sets
from tests.waits import read_set, wait_done

DONE = {"total_count": 2, "success_count": 2, "error_count": 0, "canceled_count": 0}


def sensor(ids: Any, **kwargs: Any) -> AsyncRequestSetSensor:
    kwargs.setdefault("poke_interval", 0.05)
    kwargs.setdefault("timeout", 30)
    return AsyncRequestSetSensor(task_id="wait", request_set_ids=ids, **kwargs)


# --------------------------------------------------------------------------------------------------
# construction and validation
# --------------------------------------------------------------------------------------------------


def test_template_fields() -> None:
    assert AsyncRequestSetSensor.template_fields == ("request_set_ids", "graph_conn_id", "api_version")


def test_literal_bad_ids_fail_at_parse_time() -> None:
    with pytest.raises(GraphInputError, match="not a request set id"):
        sensor(["123", "act_1"])
    assert sensor([]).request_set_ids == []  # an empty list is accepted (API.md: empty request lists)


@pytest.mark.parametrize("deferrable", [True, False])
def test_rendered_bad_ids_fail_before_http(graph_conn: Any, deferrable: bool) -> None:
    op = sensor("{{ ti.xcom_pull('x') }}", deferrable=deferrable)
    op.request_set_ids = "['12', 'oops']"  # what rendering produced
    with pytest.raises(GraphInputError, match="'oops'"):
        op.execute({})
    assert graph_conn.http_calls() == 0


# --------------------------------------------------------------------------------------------------
# deferrable path
# --------------------------------------------------------------------------------------------------


def test_defers_with_trigger_and_absolute_end_time(graph_conn: Any) -> None:
    graph_conn.config(async_pace=0)
    ids = create_sets(graph_conn.url, 3, per_set=2)
    op = sensor(
        json.dumps(ids),
        deferrable=True,
        timeout=120,
        poke_interval=7,
        fail_on_request_errors=True,
        cancel_on_kill=True,
    )
    before = time.time()
    with pytest.raises(TaskDeferred) as info:
        op.execute({})
    deferred = info.value
    assert deferred.method_name == "execute_complete"
    assert deferred.timeout == timedelta(seconds=120)
    trig = deferred.trigger
    assert isinstance(trig, AsyncRequestSetTrigger)
    _, kwargs = trig.serialize()
    assert kwargs["request_set_ids"] == ids
    assert kwargs["poll_interval"] == 7
    assert kwargs["fail_on_request_errors"] is True
    assert kwargs["cancel_on_kill"] is True
    assert before + 120 <= kwargs["end_time"] <= time.time() + 120
    # One multi-id read before deferring.
    assert graph_conn.counters()["calls_by_kind"].get("get_multi") == 1


def test_returns_at_once_when_already_done(graph_conn: Any) -> None:
    ids = create_sets(graph_conn.url, 2, per_set=2)
    wait_done(graph_conn, *ids)
    before = graph_conn.counters()["calls_by_kind"].get("get_multi", 0)
    result = sensor(ids, deferrable=True).execute({})  # no TaskDeferred: done at the first check
    assert result == dict.fromkeys(ids, DONE)
    assert graph_conn.counters()["calls_by_kind"]["get_multi"] - before == 1


def test_execute_complete_success() -> None:
    summary = {"5": DONE}
    assert sensor(["5"]).execute_complete({}, make_event("success", "ok", summary)) == summary


@pytest.mark.parametrize(("status", "match"), [("error", "failed: boom"), ("timeout", "timed out: boom")])
def test_execute_complete_raises_on_error_and_timeout(status: str, match: str) -> None:
    with pytest.raises(AsyncRequestSetError, match=match):
        sensor(["5"]).execute_complete({}, make_event(status, "boom", {"5": DONE}))


def test_execute_complete_rejects_malformed_event() -> None:
    with pytest.raises(AsyncRequestSetError, match="malformed"):
        sensor(["5"]).execute_complete({}, {"status": "weird"})
    with pytest.raises(AsyncRequestSetError, match="malformed"):
        sensor(["5"]).execute_complete({}, None)


def test_execute_complete_fail_on_request_errors() -> None:
    summary = {"5": {"total_count": 4, "success_count": 3, "error_count": 1, "canceled_count": 0}}
    assert sensor(["5"]).execute_complete({}, make_event("success", "ok", summary)) == summary
    with pytest.raises(
        AsyncRequestSetError, match=r"1 of 4 request\(s\) ended in error in request set\(s\) 5"
    ):
        sensor(["5"], fail_on_request_errors=True).execute_complete({}, make_event("success", "ok", summary))


# --------------------------------------------------------------------------------------------------
# poke path
# --------------------------------------------------------------------------------------------------


def test_poke_mode_returns_summary(
    graph_conn: Any, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.INFO)
    graph_conn.config(async_pace=10)
    ids = create_sets(graph_conn.url, 2, per_set=2)
    result = sensor(ids, deferrable=False, mode="poke").execute({})
    assert result == dict.fromkeys(ids, DONE)
    logs = all_logs(caplog, capfd)
    assert "2/2 request set(s) done" in logs
    assert TEST_TOKEN not in logs


def test_poke_reads_only_pending_sets_50_a_call(graph_conn: Any) -> None:
    graph_conn.config(async_pace=0)
    ids = create_sets(graph_conn.url, 60, per_set=1)
    op = sensor(ids, deferrable=False)
    assert not op.poke({})
    assert graph_conn.counters()["calls_by_kind"]["get_multi"] == 2
    graph_conn.config(async_pace=200)
    wait_done(graph_conn, *ids)  # single-object reads: not counted as get_multi
    result = op.poke({})
    assert result.is_done
    assert set(result.xcom_value) == set(ids)
    calls = [c for c in graph_conn.calls() if c["kind"] == "get_multi"]
    assert len(calls) == 4


def test_poke_fail_on_request_errors(graph_conn: Any) -> None:
    ids = create_sets(graph_conn.url, 2, per_set=1, bad_per_set=1)
    with pytest.raises(AsyncRequestSetError, match=r"2 of 4 request\(s\) ended in error"):
        sensor(ids, deferrable=False, fail_on_request_errors=True).execute({})


def test_poke_rides_out_transient_errors(graph_conn: Any) -> None:
    ids = create_sets(graph_conn.url, 1, per_set=1)
    wait_done(graph_conn, *ids)
    graph_conn.fault("500", count=8, method="GET")  # more than the hook's own retries
    op = sensor(ids, deferrable=False)
    first = op.poke({})
    assert not first.is_done
    assert op.poke({}).is_done


def test_on_kill_cancels_pending_sets(graph_conn: Any) -> None:
    graph_conn.config(async_pace=0)
    ids = create_sets(graph_conn.url, 2, per_set=2)
    op = sensor(ids, deferrable=False, cancel_on_kill=True)
    assert not op.poke({})
    op.on_kill()
    for set_id in ids:
        assert read_set(graph_conn, set_id)["canceled_count"] == 2


# --------------------------------------------------------------------------------------------------
# dag.test() pipelines (triggers run inline)
# --------------------------------------------------------------------------------------------------


def _state(dagrun: Any) -> str:
    return str(getattr(dagrun.state, "value", dagrun.state))


@pytest.mark.parametrize(
    "dag_id",
    [
        "test_wait_pipeline",
        "test_wait_pipeline_poke",
        "test_wait_pipeline_reschedule",
        "test_wait_pipeline_templated",
    ],
)
def test_dag_pipeline(graph_conn: Any, airflow_db: None, tmp_path: Path, dag_id: str) -> None:
    graph_conn.config(async_pace=10)
    out = tmp_path / "out.json"
    dagrun = run_dag(dag_id, n_sets=3, per_set=2, out=str(out))
    assert _state(dagrun) == "success"
    data = json.loads(out.read_text())
    assert set(data["summary"]) == set(data["ids"])
    assert all(c == DONE for c in data["summary"].values())


def test_dag_timeout_fails_clearly(
    graph_conn: Any,
    airflow_db: None,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.INFO)
    graph_conn.config(async_pace=0)
    out = tmp_path / "out.json"
    dagrun = run_dag("test_wait_timeout", n_sets=2, per_set=2, out=str(out))
    assert _state(dagrun) == "failed"
    assert not out.exists()
    logs = all_logs(caplog, capfd)
    assert "Waiting on async request sets timed out" in logs
    assert TEST_TOKEN not in logs


def test_dag_fail_on_request_errors(graph_conn: Any, airflow_db: None, tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    dagrun = run_dag("test_wait_request_errors", n_sets=2, per_set=1, bad_per_set=1, out=str(out))
    assert _state(dagrun) == "failed"
    assert not out.exists()


def test_summary_xcom_of_a_waiting_submit_works_as_request_set_ids(graph_conn: Any) -> None:
    # The "summary" XCom of SubmitAsyncBatchOperator(wait_for_completion=True) is {set_id: counts}: wait on it as is,
    # whether passed as an XComArg (a dict) or rendered from "{{ ti.xcom_pull(...) }}" (its repr).
    graph_conn.config(async_pace=10)
    ids = create_sets(graph_conn.url, 2, per_set=2)
    summary = {i: {"total_count": 2, "success_count": 0, "error_count": 0, "canceled_count": 0} for i in ids}
    for value in (summary, str(summary)):
        result = sensor(value, deferrable=False, mode="poke").execute({})
        assert sorted(result) == sorted(ids)
        assert all(c["success_count"] == 2 for c in result.values())
