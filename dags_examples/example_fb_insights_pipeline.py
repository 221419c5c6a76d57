"""Nightly insights for three ad accounts, then pause the ads that spent past a threshold.

seed_requests  (demo only) the requests that give each account a campaign, an ad set, a creative and
               ``params.ads_per_account`` active ads; ``[]`` when ``params.seed_demo_ads`` is off
seed           standard batch running them (an empty list sends nothing)
insights       one async report run per account (``level="ad"``, yesterday), waited on in the
               triggerer, rows streamed to a JSON Lines file: the XCom is a path and counts
pause_specs    reads that file line by line and writes one ``POST <ad id> status=PAUSED`` request
               per ad whose spend passed ``params.spend_threshold``
pause          standard batch fed from that file, results to another file
report         prints what was paused, and fails unless every such ad was paused

Files go under ``params.work_dir``, one folder per run. Runs as is against the local emulator
(``make demo-all``; accounts of its own, so the other examples' ads are not in its report); on
real accounts set ``seed_demo_ads`` to false.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pendulum
from airflow.providers.common.compat.sdk import DAG, Param, task  # airflow.sdk's, or 2.x homes on 2.11

from airflow_fb_async.operators.batch import GraphBatchOperator
from airflow_fb_async.operators.insights import InsightsReportOperator

with DAG(
    dag_id="example_fb_insights_pipeline",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["facebook", "example", "insights"],
    params={
        "ad_account_ids": Param(
            ["act_2222222221", "act_2222222222", "act_2222222223"],
            type="array",
            items={"type": "string", "pattern": r"^act_\d+$"},
        ),
        "spend_threshold": Param(30.0, type="number", minimum=0),
        "work_dir": Param("/tmp/airflow_fb_insights_pipeline", type="string"),
        "seed_demo_ads": Param(True, type="boolean"),
        "ads_per_account": Param(4, type="integer", minimum=1, maximum=10),
    },
) as dag:

    @task
    def seed_requests(**context: Any) -> list[dict[str, Any]]:
        """Demo data: per account a campaign, an ad set and a creative, and active ads using them."""
        params = context["params"]
        if not params["seed_demo_ads"]:
            return []
        requests: list[dict[str, Any]] = []
        for n, account in enumerate(params["ad_account_ids"]):
            requests += [
                {
                    "method": "POST",
                    "name": f"campaign{n}",
                    "relative_url": f"{account}/campaigns",
                    "body": {
                        "name": f"Insights demo {n}",
                        "objective": "OUTCOME_TRAFFIC",
                        "status": "ACTIVE",
                    },
                },
                {
                    "method": "POST",
                    "name": f"adset{n}",
                    "relative_url": f"{account}/adsets",
                    "body": {
                        "name": f"Insights demo ad set {n}",
                        "campaign_id": f"{{result=campaign{n}:$.id}}",
                        "daily_budget": 5000,
                        "billing_event": "IMPRESSIONS",
                        "targeting": {"geo_locations": {"countries": ["US"]}},
                    },
                },
                {
                    "method": "POST",
                    "name": f"creative{n}",
                    "relative_url": f"{account}/adcreatives",
                    "body": {
                        "name": f"Insights demo creative {n}",
                        "object_story_spec": {"page_id": "12345678"},
                    },
                },
            ]
            requests += [
                {
                    "method": "POST",
                    "relative_url": f"{account}/ads",
                    "depends_on": [f"adset{n}", f"creative{n}"],
                    "body": {
                        "name": f"Insights demo ad {n}-{i}",
                        "adset_id": f"{{result=adset{n}:$.id}}",
                        "creative": {"creative_id": f"{{result=creative{n}:$.id}}"},
                        "status": "ACTIVE",
                    },
                }
                for i in range(params["ads_per_account"])
            ]
        return requests

    seed = GraphBatchOperator(task_id="seed", requests=seed_requests())

    @task
    def run_folder(**context: Any) -> str:
        """This run's folder under ``work_dir`` (run ids hold ``:`` and ``+``)."""
        folder = Path(context["params"]["work_dir"]) / re.sub(r"[^A-Za-z0-9_.-]", "_", context["run_id"])
        folder.mkdir(parents=True, exist_ok=True)
        return str(folder)

    folder = run_folder()

    insights = InsightsReportOperator(
        task_id="insights",
        ad_account_ids="{{ params.ad_account_ids }}",
        level="ad",
        fields=["ad_id", "ad_name", "impressions", "spend"],
        date_preset="yesterday",
        output_path="{{ ti.xcom_pull(task_ids='run_folder') }}/insights.jsonl",
        deferrable=True,
        poll_interval=1,
    )

    @task
    def pause_specs(report: dict[str, Any], folder: str, **context: Any) -> str:
        """One pause request per ad whose spend passed the threshold, read from the report a line at a time."""
        threshold = float(context["params"]["spend_threshold"])
        path = Path(folder) / "pauses.jsonl"
        with open(report["path"]) as rows, path.open("w") as out:
            for line in rows:
                row = json.loads(line)
                if float(row.get("spend") or 0) > threshold:
                    body = {"status": "PAUSED"}
                    out.write(
                        json.dumps({"method": "POST", "relative_url": row["ad_id"], "body": body}) + "\n"
                    )
        return str(path)

    specs = pause_specs(insights.output, folder)
    pause = GraphBatchOperator(
        task_id="pause",
        requests_path=specs,
        output_path="{{ ti.xcom_pull(task_ids='run_folder') }}/paused.jsonl",
    )

    @task
    def report(insights_summary: dict[str, Any], paused: dict[str, Any], specs_path: str) -> dict[str, Any]:
        """Print the night's figures; fail unless every ad over the threshold was paused."""
        with open(specs_path) as fh:
            to_pause = sum(1 for line in fh if line.strip())
        summary = {
            "report_runs": len(insights_summary["report_runs"]),
            "rows": insights_summary["count"],
            "ads_over_threshold": to_pause,
            "ads_paused": paused["count"] - paused["failed"],
        }
        print(f"example_fb_insights_pipeline summary: {summary}")
        if summary["ads_paused"] != to_pause or paused["failed"]:
            raise ValueError(f"expected {to_pause} ads paused, got {summary}")
        return summary

    seed >> insights
    folder >> insights
    report(insights.output, pause.output, specs)
