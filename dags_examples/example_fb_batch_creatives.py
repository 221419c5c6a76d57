"""One standard batch: upload an image, build a creative from its hash, create ads; read them back with ETags.

The batch below is the seed document's image + creative + ads example: entries reference earlier
ones by name (``{result=NAME:$.path}``) and the image travels as an attached file. The provider
keeps referencing entries in one HTTP call and retries only entries that did not complete.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pendulum
from airflow.providers.common.compat.sdk import DAG, Param, task  # airflow.sdk's, or 2.x homes on 2.11

from airflow_fb_async.hooks.graph import GraphHook
from airflow_fb_async.operators.batch import GraphBatchOperator

DEMO_IMAGE = str(Path(__file__).resolve().parent / "assets" / "demo_image.png")
ACT = "{{ params.ad_account_id }}"

with DAG(
    dag_id="example_fb_batch_creatives",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["facebook", "example"],
    params={
        "ad_account_id": Param("act_1234567890", type="string", pattern=r"^act_\d+$"),
        "image_path": Param(DEMO_IMAGE, type="string"),
        "page_id": Param("12345678", type="string"),
    },
) as dag:
    create = GraphBatchOperator(
        task_id="create_creative_and_ads",
        files={"demo_image": "{{ params.image_path }}"},
        requests=[
            {
                "method": "POST",
                "name": "campaign",
                "relative_url": f"{ACT}/campaigns",
                "body": {"name": "Creatives demo", "objective": "OUTCOME_TRAFFIC", "status": "PAUSED"},
            },
            {
                "method": "POST",
                "name": "adset",
                "relative_url": f"{ACT}/adsets",
                "body": {
                    "name": "Creatives demo ad set",
                    "campaign_id": "{result=campaign:$.id}",
                    "billing_event": "IMPRESSIONS",
                    "daily_budget": 2000,
                    "targeting": {"geo_locations": {"countries": ["US"]}},
                },
            },
            {
                "method": "POST",
                "name": "create_adimage",
                "relative_url": f"{ACT}/adimages",
                "attached_files": "demo_image",
            },
            {
                "method": "POST",
                "name": "create_creative",
                "relative_url": f"{ACT}/adcreatives",
                "body": {
                    "name": "sample creative",
                    "object_story_spec": {
                        "link_data": {
                            "image_hash": "{result=create_adimage:$.images.*.hash}",
                            "link": "https://www.example.com",
                            "message": "this is a sample message",
                        },
                        "page_id": "{{ params.page_id }}",
                    },
                },
            },
            *[
                {
                    "method": "POST",
                    "name": f"ad{i}",
                    "relative_url": f"{ACT}/ads",
                    "body": {
                        "name": f"test{i}",
                        "adset_id": "{result=adset:$.id}",
                        "creative": {"creative_id": "{result=create_creative:$.id}"},
                        "status": "PAUSED",
                    },
                }
                for i in (1, 2, 3)
            ],
        ],
    )

    @task
    def read_back(results: list[dict[str, Any]]) -> dict[str, Any]:
        """Read the new ads twice: the second read is a conditional GET answered 304 from the cache."""
        ad_ids = [entry["body"]["id"] for entry in results[-3:]]
        hook = GraphHook()
        first = [hook.get(ad_id, params={"fields": "id,name,status"}, etag=True) for ad_id in ad_ids]
        second = [hook.get(ad_id, params={"fields": "id,name,status"}, etag=True) for ad_id in ad_ids]
        assert first == second, "ETag cache returned different data"
        print(f"read back {len(first)} ads twice; second read served by ETag: {first}")
        return {"ads": first}

    read_back(create.output)
