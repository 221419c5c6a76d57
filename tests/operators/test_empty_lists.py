"""Empty request lists (issue 13 e): nothing to do is a success with an empty result and no HTTP call.

SubmitAsyncBatchOperator with ``requests=[]`` returns ``[]`` (``{}`` when waiting), and what comes
after it in a DAG (the sensor, the results operator) accepts that ``[]`` as it comes, native or
rendered to text.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from airflow_fb_async.exceptions import GraphInputError
from airflow_fb_async.hooks.graph import GraphHook
from airflow_fb_async.operators.async_batch import SubmitAsyncBatchOperator
from airflow_fb_async.operators.results import AsyncRequestResultsOperator
from airflow_fb_async.sensors.async_request_set import AsyncRequestSetSensor
from tests.operators.test_async_batch import StubStore, StubTI

EMPTY_SHAPES = [[], (), "[]", " [ ] ", "()", {}, [[], []]]


def context() -> Any:
    return {"ti": StubTI(run_id="empty"), "task_state_store": StubStore()}


@pytest.mark.parametrize("wait", [False, True])
@pytest.mark.parametrize("requests", [[], "[]"])
def test_submit_with_no_requests_returns_empty_and_sends_nothing(
    graph_conn: Any, wait: bool, requests: Any
) -> None:
    op = SubmitAsyncBatchOperator(
        task_id="submit",
        ad_account_id="act_1",
        requests=requests,
        name="nothing",
        wait_for_completion=wait,
        deferrable=True,
    )
    ctx = context()
    assert op.execute(ctx) == []
    assert graph_conn.http_calls() == 0
    assert ctx["ti"].xcoms == ({"request_set_ids": [], "summary": {}} if wait else {})


def test_hook_create_async_batch_with_no_requests_creates_nothing(graph_conn: Any) -> None:
    assert GraphHook().create_async_batch("act_1", [], "nothing") == []
    assert graph_conn.http_calls() == 0


@pytest.mark.parametrize("deferrable", [False, True])
@pytest.mark.parametrize("ids", EMPTY_SHAPES, ids=[repr(s) for s in EMPTY_SHAPES])
def test_sensor_accepts_an_empty_list(graph_conn: Any, deferrable: bool, ids: Any) -> None:
    sensor = AsyncRequestSetSensor(
        task_id="wait", request_set_ids=ids, deferrable=deferrable, poke_interval=1
    )
    assert sensor.execute({}) == {}
    assert graph_conn.http_calls() == 0


@pytest.mark.parametrize("ids", EMPTY_SHAPES, ids=[repr(s) for s in EMPTY_SHAPES])
@pytest.mark.parametrize("ids_only", [False, True])
def test_results_accept_an_empty_list(graph_conn: Any, ids: Any, ids_only: bool) -> None:
    op = AsyncRequestResultsOperator(task_id="results", request_set_ids=ids, ids_only=ids_only)
    assert op.execute({}) == []
    assert graph_conn.http_calls() == 0


def test_results_with_output_path_write_an_empty_file(graph_conn: Any, tmp_path: Path) -> None:
    target = tmp_path / "out.jsonl"
    op = AsyncRequestResultsOperator(task_id="results", request_set_ids=[], output_path=str(target))
    assert op.execute({}) == {"path": str(target), "count": 0, "counts_by_status": {}}
    assert target.read_text() == ""
    assert graph_conn.http_calls() == 0


@pytest.mark.parametrize("ids", ["", None, [None], "[1, 'x']"])
def test_missing_or_garbage_ids_are_still_errors(graph_conn: Any, ids: Any) -> None:
    with pytest.raises(GraphInputError):
        AsyncRequestResultsOperator(task_id="results", request_set_ids=ids).execute({})
    with pytest.raises(GraphInputError):
        AsyncRequestSetSensor(task_id="wait", request_set_ids=ids, deferrable=True).execute({})
    assert graph_conn.http_calls() == 0
