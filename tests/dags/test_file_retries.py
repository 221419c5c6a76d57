"""DAGs for tests/operators/test_file_fed.py: a file-fed GraphBatchOperator across real task retries.

The requests and output paths come from the run's conf; ``retry_delay=0`` so the retry runs at once.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG

from airflow_fb_async.operators.batch import GraphBatchOperator

with DAG(
    dag_id="test_file_batch_retry_token",
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    tags=["test"],
):
    # Windows of 60 requests, calls of 30, one call at a time.
    GraphBatchOperator(
        task_id="batch",
        requests_path="{{ dag_run.conf['requests_path'] }}",
        output_path="{{ dag_run.conf['output_path'] }}",
        window_size=60,
        max_concurrency=1,
        batch_options={"round_backoff": 0.01, "chunk_size": 30},
        retries=1,
        retry_delay=timedelta(0),
    )
