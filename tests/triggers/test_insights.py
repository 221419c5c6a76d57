"""AsyncReportRunTrigger against the emulator over HTTP: multi-id rounds, events, errors."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from airflow_fb_async.exceptions import InsightsReportError
from airflow_fb_async.hooks.graph import GraphHook
from airflow_fb_async.triggers.insights import AsyncReportRunTrigger
from airflow_fb_async.waiting.report_runs import run_event_result
from tests.conftest import TEST_TOKEN
from tests.emu_admin import EmulatorAdmin
from tests.triggers.test_no_stall import HEAVY
from tests.waits import wait_for


def fire(trigger: AsyncReportRunTrigger) -> dict[str, Any]:
    """The trigger's one event, after a serialize round trip (as the triggerer builds it)."""
    _, kwargs = trigger.serialize()
    rebuilt = AsyncReportRunTrigger(**json.loads(json.dumps(kwargs)))

    async def first() -> dict[str, Any]:
        events = [event.payload async for event in rebuilt.run()]
        assert len(events) == 1
        return events[0]

    event = asyncio.run(first())
    assert TEST_TOKEN not in json.dumps(event)
    return event


def wait_until(hook: GraphHook, run_ids: list[str], done: Callable[[dict[str, Any]], bool]) -> None:
    """Read the runs (directly, not through the trigger) until ``done`` holds for every one."""
    wait_for(
        lambda: hook.get_report_runs(run_ids),
        lambda runs: all(done(r) for r in runs.values()),
        f"{len(run_ids)} report run(s) to reach the awaited state",
    )


def multi_id_sizes(emu: EmulatorAdmin, since: int = 0) -> list[int]:
    return [len(c["query"]["ids"].split(",")) for c in emu.calls()[since:] if c["kind"] == "get_multi"]


def test_serialize_round_trip() -> None:
    trigger = AsyncReportRunTrigger(
        ["1", 2, "1"], graph_conn_id="c", api_version="v25.0", poll_interval=5, end_time=9.5
    )
    path, kwargs = trigger.serialize()
    assert path == "airflow_fb_async.triggers.insights.AsyncReportRunTrigger"
    assert kwargs == {
        "report_run_ids": ["1", "2"],
        "graph_conn_id": "c",
        "api_version": "v25.0",
        "poll_interval": 5.0,
        "end_time": 9.5,
        "return_on_failure": True,
    }
    assert AsyncReportRunTrigger(**kwargs).serialize() == (path, kwargs)


def test_120_finished_runs_take_one_round_of_3_multi_id_calls(graph_conn: EmulatorAdmin) -> None:
    hook = GraphHook()
    run_ids = [
        hook.start_insights_report(f"act_{500 + i % 3}", {"date_preset": "yesterday"}) for i in range(120)
    ]
    wait_until(hook, run_ids, lambda r: r["async_status"] == "Job Completed")
    seen = len(graph_conn.calls())
    event = fire(AsyncReportRunTrigger(run_ids, poll_interval=0.01))
    assert event["status"] == "success"
    assert multi_id_sizes(graph_conn, seen) == [50, 50, 20]
    runs = run_event_result(event)
    assert list(runs) == run_ids
    assert {(r["async_status"], r["async_percent_completion"]) for r in runs.values()} == {
        ("Job Completed", 100)
    }
    assert {r["account_id"] for r in runs.values()} == {"500", "501", "502"}


def test_a_skipped_run_ends_the_wait_while_others_run(graph_conn: EmulatorAdmin) -> None:
    hook = GraphHook()
    graph_conn.fault("job_skipped", count=1)
    skipped = hook.start_insights_report("act_600", {"date_preset": "yesterday"})
    wait_until(hook, [skipped], lambda r: r["async_status"] == "Job Skipped")
    graph_conn.config(insights_pace=0)  # the next run stays "Job Not Started"
    waiting = hook.start_insights_report("act_600", {"date_preset": "yesterday"})
    event = fire(AsyncReportRunTrigger([skipped, waiting], poll_interval=0.01))
    assert event["status"] == "success"
    assert {k: v["async_status"] for k, v in event["report_runs"].items()} == {
        skipped: "Job Skipped",
        waiting: "Job Not Started",
    }
    assert "1 failed or skipped, 1 running" in event["message"]


def test_transient_errors_are_ridden_out(graph_conn: EmulatorAdmin) -> None:
    hook = GraphHook()
    run_id = hook.start_insights_report("act_700", {"date_preset": "yesterday"})
    wait_until(hook, [run_id], lambda r: r["async_status"] == "Job Completed")
    graph_conn.fault("500", count=8, method="GET")  # more than the hook's own 5 retries
    event = fire(AsyncReportRunTrigger([run_id], poll_interval=0.01))
    assert event["status"] == "success"
    assert graph_conn.counters()["faults_injected"]["500"] == 8


def test_an_unknown_run_is_an_error_event(graph_conn: EmulatorAdmin) -> None:
    event = fire(AsyncReportRunTrigger(["99999999999"], poll_interval=0.01))
    assert event["status"] == "error"
    assert event["report_runs"]["99999999999"]["async_status"] is None
    with pytest.raises(InsightsReportError, match="Waiting on insights report runs failed"):
        run_event_result(event)


def test_end_time_passed_is_a_timeout_event(graph_conn: EmulatorAdmin) -> None:
    event = fire(AsyncReportRunTrigger(["1"], poll_interval=0.01, end_time=time.time() - 1))
    assert event["status"] == "timeout"
    assert graph_conn.http_calls() == 0
    with pytest.raises(InsightsReportError, match="timed out"):
        run_event_result(event)


@pytest.mark.parametrize(
    "event",
    [
        None,
        [],
        {"status": "done", "message": "", "report_runs": {}},
        {"status": "success", "report_runs": {}},
    ],
)
def test_malformed_events_are_refused(event: Any) -> None:
    with pytest.raises(InsightsReportError, match="malformed report run event"):
        run_event_result(event)


def test_the_trigger_module_is_light_to_import_on_the_loop() -> None:
    """A triggerer imports a trigger's module on its event loop: ours loads no hook, no HTTP stack
    (the wait's modules come from a worker thread when it runs, as for the request-set trigger)."""
    code = (
        "import json, sys; import airflow.providers.common.compat.sdk, airflow.triggers.base; before = set(sys.modules); "
        "import airflow_fb_async.triggers.insights; print(json.dumps(sorted(set(sys.modules) - before)))"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    loaded = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "airflow_fb_async.triggers.insights" in loaded
    assert [
        m
        for m in loaded
        if m.startswith((*HEAVY, "airflow_fb_async.hooks", "airflow_fb_async.waiting.report_runs"))
    ] == []
