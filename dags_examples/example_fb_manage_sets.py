"""Manage async request sets: list the incomplete ones, change their notification, cancel them.

A large set is submitted first so that something is still running when the management tasks look.
Cancel stops what Graph has not processed yet; what already ran stays done.
"""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.providers.common.compat.sdk import DAG, Param, task  # airflow.sdk's, or 2.x homes on 2.11

from airflow_fb_async.hooks.graph import GraphHook
from airflow_fb_async.operators.async_batch import (
    CancelAsyncRequestSetOperator,
    SubmitAsyncBatchOperator,
    UpdateAsyncRequestSetOperator,
)

# The run's date in names. ``{{ ds }}`` would break runs triggered from the CLI or REST API with no
# logical date (Airflow 3): those fall back to the date the run was created for.
RUN_DATE = "{{ (logical_date | default(none) or dag_run.run_after) | ds }}"

with DAG(
    dag_id="example_fb_manage_sets",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["facebook", "example"],
    params={
        "ad_account_id": Param("act_1234567890", type="string", pattern=r"^act_\d+$"),
        "n_campaigns": Param(1000, type="integer", minimum=1, maximum=1000),
    },
) as dag:

    @task
    def campaign_requests(**context: Any) -> list[dict[str, Any]]:
        params = context["params"]
        return [
            {
                "name": f"campaign-{i}",
                "relative_url": f"{params['ad_account_id']}/campaigns",
                "body": {"name": f"Bulk campaign {i}", "objective": "OUTCOME_TRAFFIC", "status": "PAUSED"},
            }
            for i in range(params["n_campaigns"])
        ]

    submit = SubmitAsyncBatchOperator(
        task_id="submit",
        ad_account_id="{{ params.ad_account_id }}",
        requests=campaign_requests(),
        name=f"bulk campaigns {RUN_DATE}",
    )

    @task
    def incomplete_sets(**context: Any) -> list[str]:
        """Ids of the account's sets still running (the one just submitted among them, usually)."""
        hook = GraphHook()
        sets = list(hook.list_request_sets(context["params"]["ad_account_id"], is_completed=False))
        print(f"{len(sets)} incomplete set(s): {[s['name'] for s in sets]}")
        return [s["id"] for s in sets]

    pending = incomplete_sets()

    rename = UpdateAsyncRequestSetOperator(
        task_id="rename_and_silence",
        request_set_id="{{ ti.xcom_pull(task_ids='submit')[0] }}",
        name=f"bulk campaigns {RUN_DATE} (canceled by example)",
        notification_mode="OFF",
    )

    cancel = CancelAsyncRequestSetOperator(task_id="cancel", object_ids=submit.output)

    submit >> pending >> rename >> cancel
