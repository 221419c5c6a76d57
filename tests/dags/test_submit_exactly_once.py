"""DAG for tests/operators/test_submit_reruns.py: a submit whose rendered name changes with the try
number and that Airflow retries once; the sensor after it waits on whatever the submit returned."""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG

from airflow_fb_async.operators.async_batch import SubmitAsyncBatchOperator
from airflow_fb_async.sensors.async_request_set import AsyncRequestSetSensor

with DAG(
    dag_id="test_submit_exactly_once",
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    params={"account": "act_31337"},
    tags=["test"],
) as dag:
    submit = SubmitAsyncBatchOperator(
        task_id="submit",
        ad_account_id="{{ params.account }}",
        requests=[
            {
                "name": f"r{i}",
                "relative_url": "{{ params.account }}/campaigns",
                "body": {"name": f"once {i}", "objective": "OUTCOME_TRAFFIC"},
            }
            for i in range(3)
        ],
        name="exactly once, try {{ ti.try_number }}",
        deferrable=False,
        retries=1,
        retry_delay=timedelta(seconds=1),
    )
    AsyncRequestSetSensor(
        task_id="wait", request_set_ids=submit.output, deferrable=False, poke_interval=0.2, timeout=60
    )
