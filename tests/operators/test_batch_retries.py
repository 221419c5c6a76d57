"""GraphBatchOperator exactly once across task retries: real dag.test() runs (Airflow's task state
store, XComs, retries) against the emulator. The DAGs live in tests/dags/test_batch_retries.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import pytest

from tests.conftest import TEST_TOKEN, run_dag

if TYPE_CHECKING:
    from tests.emu_admin import EmulatorAdmin

pytestmark = pytest.mark.usefixtures("airflow_db")


@contextmanager
def token_rejected_on_call(emu: EmulatorAdmin, n: int) -> Iterator[None]:
    """The emulator refuses the token (code 190) on its ``n``-th Graph call from now, as when a
    token expires or is revoked in the middle of a batch (a queued ``token_rejected`` fault)."""
    emu.fault("token_rejected", count=1, after=n - 1)
    try:
        yield
    finally:
        emu.clear_faults()


def task_instance(run: Any, task_id: str = "batch") -> Any:
    from airflow.utils.session import create_session

    with create_session() as session:
        ti = run.get_task_instance(task_id, session=session)
        session.expunge(ti)
        return ti


def xcom(run: Any, task_id: str = "batch", key: str = "return_value") -> Any:
    """The XCom under ``key`` (default ``return_value``) that the task's last try left."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.scalars(
            XComModel.get_many(run_id=run.run_id, dag_ids=run.dag_id, task_ids=task_id, key=key)
        ).all()
        assert len(rows) == 1, rows
        return XComModel.deserialize_value(rows[0])


def batch_sizes(emu: EmulatorAdmin) -> list[tuple[int, int]]:
    """(HTTP status, entries) of every standard batch call, in order."""
    return [(c["status"], c["batch_size"]) for c in emu.calls() if c["kind"] == "batch"]


def test_token_rejected_on_the_third_call_then_the_retry_sends_only_the_rest(
    graph_conn: EmulatorAdmin,
) -> None:
    with token_rejected_on_call(graph_conn, 3):
        run = run_dag("test_batch_retry_token")
    assert run.state == "success"
    assert task_instance(run).try_number == 2
    names = [c["name"] for c in graph_conn.objects("campaign")]
    assert sorted(names) == [f"c{i:03d}" for i in range(150)]  # exactly 150, none twice
    # Try 1: two calls of 50, the 3rd rejected (190). Try 2: the 50 never sent, in one call.
    assert batch_sizes(graph_conn) == [(200, 50), (200, 50), (400, 50), (200, 50)]
    results = xcom(run)
    assert len(results) == 150
    assert [r["code"] for r in results] == [200] * 150
    ids = {c["name"]: c["id"] for c in graph_conn.objects("campaign")}
    assert [r["body"]["id"] for r in results] == [ids[f"c{i:03d}"] for i in range(150)]
    assert TEST_TOKEN not in str(results)


def test_a_stopped_batch_pushes_the_results_so_far_and_fails_saying_so(
    graph_conn: EmulatorAdmin,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with token_rejected_on_call(graph_conn, 3):
        run = run_dag("test_batch_stop_token")
    logs = capsys.readouterr().out + caplog.text  # task logs go to stdout
    assert run.state == "failed"
    assert len(graph_conn.objects("campaign")) == 100
    results = xcom(run)
    assert [r and r["code"] for r in results] == [200] * 100 + [None] * 50
    assert "The batch stopped with 100 of 150 entries settled (50 not sent or not done)" in logs
    assert "Graph API error 190" in logs
    assert "The results so far are this try's XCom return_value" in logs
    assert TEST_TOKEN not in logs


def test_one_valid_and_one_invalid_create_with_retries_leave_one_campaign(graph_conn: EmulatorAdmin) -> None:
    run = run_dag("test_batch_retry_invalid")
    assert run.state == "failed"
    assert task_instance(run).try_number == 3
    assert [c["name"] for c in graph_conn.objects("campaign")] == ["good"]
    # Every try sent the bad create again (a definite error), the good one only in the first.
    assert batch_sizes(graph_conn) == [(200, 2), (200, 1), (200, 1)]
    results = xcom(run)
    assert [r["code"] for r in results] == [200, 400]
    assert results[0]["body"]["id"] == graph_conn.objects("campaign")[0]["id"]


def test_a_try_killed_with_entries_in_flight_resends_reads_and_updates_not_creates(
    graph_conn: EmulatorAdmin,
) -> None:
    from airflow_fb_async.hooks.graph import GraphHook

    existing = GraphHook().post("act_504504/campaigns", data={"name": "old", "objective": "OUTCOME_TRAFFIC"})
    run = run_dag("test_batch_retry_in_flight", campaign_id=existing["id"])
    assert run.state == "success"
    assert task_instance(run).try_number == 2
    # Try 1's call did its work (2 creates, 1 update) and the try died before recording the outcome.
    # Try 2: the creates are 504 (not resent), the update and the read are sent again.
    assert batch_sizes(graph_conn) == [(200, 4), (200, 2)]
    assert sorted(c["name"] for c in graph_conn.objects("campaign")) == ["new1", "new2", "renamed"]
    results = xcom(run)
    assert [r["code"] for r in results] == [504, 504, 200, 200]
    assert results[0]["body"]["error"]["type"] == "BatchEntryAmbiguous"
    assert results[3]["body"] == {"name": "renamed", "id": existing["id"]}


def test_entries_ambiguous_in_one_try_are_not_resent_by_the_next(graph_conn: EmulatorAdmin) -> None:
    from airflow_fb_async.hooks.graph import GraphHook

    existing = GraphHook().post("act_504504/campaigns", data={"name": "old", "objective": "OUTCOME_TRAFFIC"})
    graph_conn.fault("error_after_commit", method="POST", path_regex=r"^/(v[0-9.]+/?)?$")
    run = run_dag("test_batch_retry_ambiguous", campaign_id=existing["id"])
    assert run.state == "failed"
    assert task_instance(run).try_number == 2
    # Try 1: the call did its work, answered 500; the update and the read were resent, the creates
    # became 504. Try 2 had nothing to send.
    assert batch_sizes(graph_conn) == [(500, 4), (200, 2)]
    assert sorted(c["name"] for c in graph_conn.objects("campaign")) == ["new1", "new2", "renamed"]
    results = xcom(run)
    assert [r["code"] for r in results] == [504, 504, 200, 200]


def test_requests_rendered_differently_on_the_retry_start_afresh(
    graph_conn: EmulatorAdmin, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    run = run_dag("test_batch_retry_changed")
    assert run.state == "failed"
    assert sorted(c["name"] for c in graph_conn.objects("campaign")) == ["try1", "try2"]
    assert batch_sizes(graph_conn) == [(200, 2), (200, 2)]
    logs = capsys.readouterr().out + caplog.text
    assert "The rendered requests differ from those of an earlier try of this task: starting" in logs


def test_a_stopped_batch_outside_a_task_keeps_its_results_on_the_error(graph_conn: EmulatorAdmin) -> None:
    from airflow_fb_async.exceptions import GraphAuthError, GraphBatchError
    from airflow_fb_async.operators.batch import GraphBatchOperator

    requests = [
        {"method": "POST", "relative_url": "act_5/campaigns", "body": {"name": f"c{i}", "objective": "X"}}
        for i in range(150)
    ]
    op = GraphBatchOperator(
        task_id="b", requests=requests, max_concurrency=1, batch_options={"round_backoff": 0}
    )
    with token_rejected_on_call(graph_conn, 3), pytest.raises(GraphBatchError) as info:
        op.execute({})
    err = info.value
    assert [r and r["code"] for r in err.results or []] == [200] * 100 + [None] * 50
    assert isinstance(err.cause, GraphAuthError)
    assert err.cause.code == 190
    text = str(err)
    assert "The batch stopped with 100 of 150 entries settled (50 not sent or not done)" in text
    assert "The results so far are on this error" in text
    assert "without a task state store a retry sends only reads and repeatable writes again" in text
    assert TEST_TOKEN not in text
    assert len(graph_conn.objects("campaign")) == 100
