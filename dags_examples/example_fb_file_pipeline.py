"""A file-fed pipeline: 10,000 ads from a JSON Lines file, created, waited on, read back and paused.

setup        standard batch: a campaign, an ad set referencing it by name, and a creative
write_specs  writes ``params.n_ads`` ad specs, one request per line, to a JSON Lines file
submit       ``requests_path``: async request sets of 1000 built as the file is read
wait         deferrable sensor: the triggerer polls Graph, the worker slot is free meanwhile
ad_ids       the ids of the ads created, streamed to a JSON Lines file (``ids_only``, ``output_path``)
pause_specs  derives one ``POST <ad id> status=PAUSED`` request per line of that file
pause        ``requests_path`` + ``output_path``: a standard batch run window by window, results to a file
report       checks the counts and prints a summary

Every XCom stays small (paths, set ids, counts), whatever ``n_ads``. Files go under
``params.work_dir`` (a local directory; any ``ObjectStoragePath`` URL works for the operators'
paths), one folder per run. Runs as is against the local emulator (``make demo-all``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pendulum
from airflow.providers.common.compat.sdk import DAG, Param, task  # airflow.sdk's, or 2.x homes on 2.11

from airflow_fb_async.operators.async_batch import SubmitAsyncBatchOperator
from airflow_fb_async.operators.batch import GraphBatchOperator
from airflow_fb_async.operators.results import AsyncRequestResultsOperator
from airflow_fb_async.sensors.async_request_set import AsyncRequestSetSensor

with DAG(
    dag_id="example_fb_file_pipeline",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["facebook", "example"],
    params={
        "ad_account_id": Param("act_1234567890", type="string", pattern=r"^act_\d+$"),
        "n_ads": Param(10_000, type="integer", minimum=1),
        "work_dir": Param("/tmp/airflow_fb_file_pipeline", type="string"),
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
                    "name": "File pipeline campaign",
                    "objective": "OUTCOME_TRAFFIC",
                    "status": "PAUSED",
                },
            },
            {
                "method": "POST",
                "name": "adset",
                "relative_url": "{{ params.ad_account_id }}/adsets",
                "body": {
                    "name": "File pipeline ad set",
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
                "body": {"name": "File pipeline creative", "object_story_spec": {"page_id": "12345678"}},
            },
        ],
    )

    @task(multiple_outputs=True)
    def write_specs(setup_results: list[dict[str, Any]], **context: Any) -> dict[str, str]:
        """One ad spec per line; returns the run's file paths (the XCom stays a few paths)."""
        params = context["params"]
        folder = Path(params["work_dir"]) / re.sub(r"[^A-Za-z0-9_.-]", "_", context["run_id"])
        folder.mkdir(parents=True, exist_ok=True)
        paths = {name: str(folder / f"{name}.jsonl") for name in ("specs", "ad_ids", "pauses", "paused")}
        adset_id = setup_results[1]["body"]["id"]
        creative_id = setup_results[2]["body"]["id"]
        with open(paths["specs"], "w") as fh:
            for i in range(params["n_ads"]):
                spec = {
                    "name": f"ad-{i}",
                    "relative_url": f"{params['ad_account_id']}/ads",
                    "body": {
                        "name": f"File pipeline ad {i}",
                        "adset_id": adset_id,
                        "creative": {"creative_id": creative_id},
                        "status": "ACTIVE",
                    },
                }
                fh.write(json.dumps(spec) + "\n")
        return paths

    paths = write_specs(setup.output)

    submit = SubmitAsyncBatchOperator(
        task_id="submit",
        ad_account_id="{{ params.ad_account_id }}",
        requests_path=paths["specs"],
        name="file pipeline ads",
    )

    wait = AsyncRequestSetSensor(
        task_id="wait", request_set_ids=submit.output, deferrable=True, poke_interval=1, timeout=1800
    )

    ad_ids = AsyncRequestResultsOperator(
        task_id="ad_ids", request_set_ids=submit.output, ids_only=True, output_path=paths["ad_ids"]
    )

    @task
    def pause_specs(ids_file: dict[str, Any], pauses_path: str) -> str:
        """Derive one pause request per created ad (an update of one object: repeatable)."""
        with open(ids_file["path"]) as src, open(pauses_path, "w") as out:
            for line in src:
                if line.strip():
                    ad_id = json.loads(line)
                    out.write(
                        json.dumps({"method": "POST", "relative_url": ad_id, "body": {"status": "PAUSED"}})
                    )
                    out.write("\n")
        return pauses_path

    pause = GraphBatchOperator(
        task_id="pause",
        requests_path=pause_specs(ad_ids.output, paths["pauses"]),
        output_path=paths["paused"],
    )

    @task
    def report(
        counts: dict[str, Any], ids_file: dict[str, Any], paused: dict[str, Any], **context: Any
    ) -> dict[str, Any]:
        """Fail unless every spec became an ad and every ad was paused; print a summary."""
        n_ads = context["params"]["n_ads"]
        created = sum(c["success_count"] for c in counts.values())
        summary = {
            "sets": len(counts),
            "ads_created": created,
            "ad_ids_written": ids_file["count"],
            "ads_paused": paused["count"] - paused["failed"],
            "pause_failures": paused["failed"],
        }
        print(f"example_fb_file_pipeline summary: {summary}")
        if not created == ids_file["count"] == summary["ads_paused"] == n_ads:
            raise ValueError(f"expected {n_ads} ads created and paused, got {summary}")
        return summary

    wait >> ad_ids
    report(wait.output, ad_ids.output, pause.output)
