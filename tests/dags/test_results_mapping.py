"""DAG for tests/operators/test_results.py: results of an async set fan out with dynamic task mapping.

create_set   POSTs one async request set (``n_ok`` campaign creates, ``n_err`` that fail validation)
wait         polls the set until ``is_completed`` (plain task: no dependency on the sensor)
ids          AsyncRequestResultsOperator(ids_only=True): the created campaign ids
read_back    one mapped task per id, reading the campaign back with GraphHook.get
summary      the campaigns read back, for the test to compare with the emulator's objects
"""

from __future__ import annotations

import json
from typing import Any

import pendulum
from airflow.sdk import DAG, Param, task

from airflow_fb_async.operators.results import AsyncRequestResultsOperator

with DAG(
    dag_id="test_results_mapping",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={
        "ad_account_id": Param("act_1", type="string"),
        "n_ok": Param(28, type="integer", minimum=0),
        "n_err": Param(2, type="integer", minimum=0),
    },
) as dag:

    @task
    def create_set(**context: Any) -> list[str]:
        from airflow_fb_async.hooks.graph import GraphHook

        params = context["params"]
        account = params["ad_account_id"]
        adbatch = [
            {
                "name": f"ok{i}",
                "relative_url": f"{account}/campaigns",
                "body": f"name=mapped{i}&objective=OUTCOME_TRAFFIC",
            }
            for i in range(params["n_ok"])
        ]
        adbatch += [
            {"name": f"bad{i}", "relative_url": f"{account}/campaigns", "body": f"name=bad{i}"}
            for i in range(params["n_err"])
        ]
        answer = GraphHook().post(
            f"{account}/async_batch_requests",
            data={"name": f"results mapping {context['run_id']}", "adbatch": json.dumps(adbatch)},
        )
        return [str(answer["id"])]

    @task
    def wait(set_ids: list[str]) -> list[str]:
        from airflow_fb_async.hooks.graph import GraphHook
        from tests.waits import wait_for

        hook = GraphHook()
        wait_for(
            lambda: hook.get_request_sets(set_ids, fields=["is_completed"]),
            lambda sets: all(sets[s].get("is_completed") for s in set_ids),
            f"request sets {set_ids} to complete",
            interval=0.1,
        )
        return set_ids

    @task
    def read_back(object_id: str) -> dict[str, Any]:
        from airflow_fb_async.hooks.graph import GraphHook

        obj = GraphHook().get(object_id, params={"fields": "id,name"})
        return {"id": str(obj["id"]), "name": obj.get("name")}

    @task
    def summary(read: list[dict[str, Any]]) -> dict[str, Any]:
        ids = sorted(r["id"] for r in read)
        return {"count": len(ids), "ids": ids}

    ready = wait(create_set())
    ids = AsyncRequestResultsOperator(task_id="ids", request_set_ids=ready, ids_only=True)
    summary(read_back.expand(object_id=ids.output))
