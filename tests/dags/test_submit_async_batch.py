"""DAG for tests/operators/test_async_batch.py: submit two request sets and wait (deferrable)."""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG

from airflow_fb_async.operators.async_batch import SubmitAsyncBatchOperator

with DAG(
    dag_id="test_submit_async_batch",
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    params={"account": "act_777"},
    tags=["test"],
) as dag:
    SubmitAsyncBatchOperator(
        task_id="submit",
        ad_account_id="{{ params.account }}",
        requests=[
            {
                "name": f"r{i}",
                "relative_url": "{{ params.account }}/campaigns",
                "body": {"name": f"e2e {i} {{{{ run_id }}}}", "objective": "OUTCOME_TRAFFIC"},
            }
            for i in range(5)
        ],
        name="e2e",
        max_set_size=3,
        wait_for_completion=True,
        deferrable=True,
        poll_interval=0.2,
        timeout=60,
        fail_on_request_errors=True,
    )
