"""dag.test() scenarios for AsyncRequestSetSensor: create request sets -> wait -> check the XCom.

Importable without the emulator running: nothing here touches the network at import time. The
connection comes from ``AIRFLOW_CONN_FACEBOOK_GRAPH_DEFAULT`` (the ``graph_conn`` test fixture).

Run conf (all optional): ``n_sets`` (3), ``per_set`` (2), ``bad_per_set`` (0: requests that fail),
``out`` (a file path: the check task writes the sensor's XCom and the created ids there).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import DAG, task

from airflow_fb_async.sensors.async_request_set import AsyncRequestSetSensor

AD_ACCOUNT = "act_1"


@task
def create_sets(**context: Any) -> list[str]:
    from airflow_fb_async.hooks.graph import GraphHook

    conf = context["dag_run"].conf or {}
    n_sets = int(conf.get("n_sets", 3))
    per_set = int(conf.get("per_set", 2))
    bad_per_set = int(conf.get("bad_per_set", 0))
    hook = GraphHook()
    ids = []
    for s in range(n_sets):
        batch = [
            {
                "name": f"c{s}_{i}",
                "relative_url": f"{AD_ACCOUNT}/campaigns",
                "body": f"name=wait-{s}-{i}&objective=OUTCOME_TRAFFIC&status=PAUSED",
            }
            for i in range(per_set)
        ]
        batch += [
            {"name": f"bad{s}_{i}", "relative_url": "999999999999/nonexistent_edge", "body": "name=x"}
            for i in range(bad_per_set)
        ]
        answer = hook.post(
            f"{AD_ACCOUNT}/async_batch_requests",
            data={"name": f"wait pipeline set {s}", "adbatch": json.dumps(batch)},
        )
        ids.append(str(answer["id"]))
    return ids


@task
def check(summary: dict[str, Any], ids: list[str], **context: Any) -> None:
    conf = context["dag_run"].conf or {}
    per_set = int(conf.get("per_set", 2))
    bad_per_set = int(conf.get("bad_per_set", 0))
    out = conf.get("out")
    if out:
        with open(out, "w") as fh:
            json.dump({"summary": summary, "ids": ids}, fh)
    assert sorted(summary) == sorted(ids), (summary, ids)
    for counts in summary.values():
        assert counts["total_count"] == per_set + bad_per_set, counts
        assert counts["success_count"] == per_set, counts


def _pipeline(dag_id: str, *, request_set_ids: str | None = None, **sensor_kwargs: Any) -> DAG:
    """create_sets -> wait -> check; the sensor takes the ids from ``create_sets``' XComArg, or from
    the ``request_set_ids`` template when given (then ordered after ``create_sets`` explicitly)."""
    with DAG(
        dag_id=dag_id,
        schedule=None,
        start_date=datetime(2025, 1, 1),
        catchup=False,
        tags=["test"],
        default_args={"retries": 0},
    ) as dag:
        ids = create_sets()
        wait = AsyncRequestSetSensor(
            task_id="wait",
            request_set_ids=ids if request_set_ids is None else request_set_ids,
            poke_interval=0.2,
            **sensor_kwargs,
        )
        if request_set_ids is not None:
            ids >> wait
        check(wait.output, ids)
    return dag


test_wait_pipeline = _pipeline("test_wait_pipeline", deferrable=True, timeout=60)
test_wait_pipeline_poke = _pipeline("test_wait_pipeline_poke", deferrable=False, mode="poke", timeout=60)
test_wait_pipeline_reschedule = _pipeline(
    "test_wait_pipeline_reschedule", deferrable=False, mode="reschedule", timeout=60
)
# Templated ids (a rendered Python-list string) instead of an XComArg.
test_wait_pipeline_templated = _pipeline(
    "test_wait_pipeline_templated",
    request_set_ids="{{ ti.xcom_pull(task_ids='create_sets') }}",
    deferrable=True,
    timeout=60,
)

# Never completes (the test pauses processing): the sensor must fail with a clear timeout.
test_wait_timeout = _pipeline(
    "test_wait_timeout", deferrable=True, timeout=timedelta(seconds=1.5), fail_on_request_errors=True
)
test_wait_request_errors = _pipeline("test_wait_request_errors", deferrable=True, fail_on_request_errors=True)
