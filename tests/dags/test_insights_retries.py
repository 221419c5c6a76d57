"""DAG for tests/operators/test_insights.py: InsightsReportOperator across a real task retry
(try 2 reads the report runs try 1 started, kept in the task state store).

The output path comes from the run's conf; ``retry_delay=0`` so the retry runs at once. Small pages
(5 rows) so that a read can fail after the first page was written.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG

from airflow_fb_async.operators.insights import InsightsReportOperator

with DAG(
    dag_id="test_insights_retry",
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    tags=["test"],
):
    InsightsReportOperator(
        task_id="insights",
        ad_account_ids=["act_3301", "act_3302"],
        level="campaign",
        fields=["campaign_id", "impressions"],
        time_range={"since": "2025-03-01", "until": "2025-03-10"},
        time_increment=1,
        output_path="{{ dag_run.conf['output_path'] }}",
        page_size=5,
        deferrable=True,
        poll_interval=0.05,
        retries=1,
        retry_delay=timedelta(0),
    )
