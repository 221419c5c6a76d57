"""dag.test() scenario of the chaos campaign: submit -> deferrable sensor -> results (JSON Lines).

Run conf: ``account`` (act_7500), ``prefix`` (object name prefix), ``n`` (requests), ``max_set_size``,
``out`` (the results file). Importable without the emulator: nothing touches the network at import.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.sdk import DAG, task

from airflow_fb_async.operators.async_batch import SubmitAsyncBatchOperator
from airflow_fb_async.operators.results import AsyncRequestResultsOperator
from airflow_fb_async.sensors.async_request_set import AsyncRequestSetSensor


@task
def make_requests(**context: Any) -> list[dict[str, Any]]:
    conf = context["dag_run"].conf or {}
    account, prefix = conf.get("account", "act_7500"), conf.get("prefix", "chaos-dag-")
    return [
        {
            "name": f"r{k}",
            "relative_url": f"{account}/campaigns",
            "body": {
                "name": f"{prefix}{k}",
                "objective": "OUTCOME_TRAFFIC",
                "status": "PAUSED",
                "special_ad_categories": [],
            },
        }
        for k in range(int(conf.get("n", 60)))
    ]


with DAG(
    dag_id="chaos_pipeline",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    tags=["test"],
    default_args={"retries": 2, "retry_delay": 0},
) as dag:
    submit = SubmitAsyncBatchOperator(
        task_id="submit",
        ad_account_id="{{ dag_run.conf.get('account', 'act_7500') }}",
        requests=make_requests(),
        name="chaos dag",
        max_set_size=25,
    )
    wait = AsyncRequestSetSensor(
        task_id="wait", request_set_ids=submit.output, deferrable=True, poke_interval=0.2, timeout=300
    )
    results = AsyncRequestResultsOperator(
        task_id="results",
        request_set_ids=submit.output,
        ids_only=True,
        output_path="{{ dag_run.conf['out'] }}",
    )
    wait >> results
