"""Create ads by the hundred with an async batch request set, wait without a worker slot, hand ids on.

setup      standard batch: a campaign, an ad set referencing it by name, and a creative
submit     an async request set creating ``params.n_ads`` ads under that ad set
wait       deferrable sensor: the triggerer polls Graph, the worker slot is free meanwhile
ad_ids     the ids of the ads the set created (``ids_only=True``), ready for ``.expand()``
check_ad   one mapped task per new ad, reading it back
report     a summary of what happened

Runs as is against the local emulator (``make demo``); point ``facebook_graph_default`` at
https://graph.facebook.com and pass your own ``ad_account_id`` to run it for real.
"""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.providers.common.compat.sdk import DAG, Param, task  # airflow.sdk's, or 2.x homes on 2.11

from airflow_fb_async.hooks.graph import GraphHook
from airflow_fb_async.operators.async_batch import SubmitAsyncBatchOperator
from airflow_fb_async.operators.batch import GraphBatchOperator
from airflow_fb_async.operators.results import AsyncRequestResultsOperator
from airflow_fb_async.sensors.async_request_set import AsyncRequestSetSensor

MAX_ADS = 1000
# The run's date in names. ``{{ ds }}`` would break runs triggered from the CLI or REST API with no
# logical date (Airflow 3): those fall back to the date the run was created for.
RUN_DATE = "{{ (logical_date | default(none) or dag_run.run_after) | ds }}"

with DAG(
    dag_id="example_fb_async_ad_creation",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["facebook", "example"],
    params={
        "ad_account_id": Param("act_1234567890", type="string", pattern=r"^act_\d+$"),
        "n_ads": Param(25, type="integer", minimum=1, maximum=MAX_ADS),
    },
) as dag:
    setup = GraphBatchOperator(
        task_id="setup",
        requests=[
            {
                "method": "POST",
                "name": "campaign",
                "relative_url": "{{ params.ad_account_id }}/campaigns",
                "body": {
                    "name": f"Demo campaign {RUN_DATE}",
                    "objective": "OUTCOME_TRAFFIC",
                    "status": "PAUSED",
                },
            },
            {
                "method": "POST",
                "name": "adset",
                "relative_url": "{{ params.ad_account_id }}/adsets",
                "body": {
                    "name": "Demo ad set",
                    "campaign_id": "{result=campaign:$.id}",
                    "daily_budget": 5000,
                    "billing_event": "IMPRESSIONS",
                    "targeting": {"geo_locations": {"countries": ["US"]}},
                },
            },
            {
                "method": "POST",
                "name": "creative",
                "relative_url": "{{ params.ad_account_id }}/adcreatives",
                "body": {"name": "Demo creative", "object_story_spec": {"page_id": "12345678"}},
            },
        ],
    )

    @task
    def ad_requests(setup_results: list[dict[str, Any]], **context: Any) -> list[dict[str, Any]]:
        """One async request per ad, under the ad set and creative that ``setup`` created."""
        params = context["params"]
        adset_id = setup_results[1]["body"]["id"]
        creative_id = setup_results[2]["body"]["id"]
        return [
            {
                "name": f"ad-{i}",
                "relative_url": f"{params['ad_account_id']}/ads",
                "body": {
                    "name": f"Demo ad {i}",
                    "adset_id": adset_id,
                    "creative": {"creative_id": creative_id},
                    "status": "PAUSED",
                },
            }
            for i in range(params["n_ads"])
        ]

    submit = SubmitAsyncBatchOperator(
        task_id="submit",
        ad_account_id="{{ params.ad_account_id }}",
        requests=ad_requests(setup.output),
        name=f"demo ads {RUN_DATE}",
    )

    wait = AsyncRequestSetSensor(
        task_id="wait",
        request_set_ids=submit.output,
        deferrable=True,
        poke_interval=1,
        timeout=600,
    )

    ad_ids = AsyncRequestResultsOperator(task_id="ad_ids", request_set_ids=submit.output, ids_only=True)

    @task
    def check_ad(ad_id: str) -> dict[str, Any]:
        """Read one new ad back (one mapped task instance per ad)."""
        ad: dict[str, Any] = GraphHook().get(ad_id, params={"fields": "id,name,adset_id,status"})
        return ad

    @task
    def report(counts: dict[str, Any], ads: list[dict[str, Any]]) -> dict[str, Any]:
        keys = ("total_count", "success_count", "error_count")
        total = {k: sum(c[k] for c in counts.values()) for k in keys}
        summary = {"sets": len(counts), **total, "ads_checked": len(ads)}
        print(f"example_fb_async_ad_creation summary: {summary}")
        return summary

    checked = check_ad.expand(ad_id=ad_ids.output)
    wait >> ad_ids
    report(wait.output, checked)
