"""The hooks' insights calls against the emulator over HTTP: start, multi-id reads, paged rows."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Callable
from typing import Any

import pytest

from airflow_fb_async.exceptions import GraphAPIError, GraphInputError, GraphThrottledError
from airflow_fb_async.hooks.graph import GraphAsyncHook, GraphHook
from airflow_fb_async.hooks.insights import (
    JOB_FAILED_STATUSES,
    insights_params,
    report_run_done,
)
from airflow_fb_async.hooks.insights_plan import split_range
from tests.emu_admin import EmulatorAdmin
from tests.waits import async_wait_for, wait_for

ACT = "act_4242"
JAN = {"since": "2025-01-01", "until": "2025-01-20"}


def wait_runs(
    read: Callable[[], dict[str, dict[str, Any]]], done: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """Poll report runs until ``done`` holds for every one (a state, not a time, is awaited)."""
    return wait_for(read, lambda runs: all(done(run) for run in runs.values()), "every report run to end")


def make_campaigns(hook: GraphHook, n: int, account: str = ACT) -> list[str]:
    return [
        hook.post(f"{account}/campaigns", data={"name": f"c{i}", "objective": "OUTCOME_TRAFFIC"})["id"]
        for i in range(n)
    ]


def multi_id_sizes(emu: EmulatorAdmin) -> list[int]:
    return [len(c["query"]["ids"].split(",")) for c in emu.calls() if c["kind"] == "get_multi"]


def test_120_report_runs_are_read_in_3_multi_id_calls(graph_conn: EmulatorAdmin) -> None:
    graph_conn.config(insights_pace=0)
    hook = GraphHook()
    run_ids = [
        hook.start_insights_report(f"act_{100 + i % 4}", {"fields": ["impressions"]}) for i in range(120)
    ]
    assert len(set(run_ids)) == 120
    runs = hook.get_report_runs(run_ids)
    assert list(runs) == run_ids
    assert {(r["async_status"], r["async_percent_completion"]) for r in runs.values()} == {
        ("Job Not Started", 0)
    }
    assert {r["account_id"] for r in runs.values()} == {"100", "101", "102", "103"}
    assert multi_id_sizes(graph_conn) == [50, 50, 20]

    async def read_async() -> dict[str, dict[str, Any]]:
        async with GraphAsyncHook() as ahook:
            return await ahook.get_report_runs(run_ids, fields=["async_status"])

    again = asyncio.run(read_async())
    assert again == {r: {"id": r, "async_status": "Job Not Started"} for r in run_ids}
    assert multi_id_sizes(graph_conn) == [50, 50, 20] * 2
    counters = graph_conn.counters()
    assert counters["calls_by_kind"]["insights_start"] == 120
    assert counters["http_calls"] == 120 + 6


def test_rows_of_a_run_across_pages_all_once(graph_conn: EmulatorAdmin) -> None:
    graph_conn.config(insights_pace=500)
    hook = GraphHook()
    camps = make_campaigns(hook, 3)
    params = {
        "level": "campaign",
        "fields": ["campaign_id", "impressions", "spend"],
        "time_range": {"since": dt.date(2025, 1, 1), "until": "2025-01-20"},
        "time_increment": 1,
    }
    run_id = hook.start_insights_report(ACT, params)
    runs = wait_runs(
        lambda: hook.get_report_runs([run_id]), lambda r: r["async_status"] in ("Job Completed",)
    )
    assert report_run_done(runs[run_id])
    before = graph_conn.counters()["calls_by_kind"]["get_edge"]
    rows = list(hook.iter_report_rows(run_id, page_size=7))
    assert graph_conn.counters()["calls_by_kind"]["get_edge"] - before == 9  # ceil(60 / 7)
    keys = [(r["campaign_id"], r["date_start"]) for r in rows]
    assert len(rows) == 60
    assert len(set(keys)) == 60
    assert {c for c, _ in keys} == set(camps)
    assert {d for _, d in keys} == {f"2025-01-{d:02d}" for d in range(1, 21)}
    # The synchronous report of the same question, through the hook's paginate, is the same.
    assert list(hook.paginate(f"{ACT}/insights", {**params, "time_range": JAN}, page_size=25)) == rows

    async def rows_async() -> list[dict[str, Any]]:
        async with GraphAsyncHook() as ahook:
            return [row async for row in ahook.iter_report_rows(run_id, page_size=11)]

    assert asyncio.run(rows_async()) == rows


def test_async_twins_start_wait_and_read(graph_conn: EmulatorAdmin) -> None:
    graph_conn.config(insights_pace=500)
    make_campaigns(GraphHook(), 2, account="act_77")

    async def walk() -> tuple[str, dict[str, Any], list[dict[str, Any]]]:
        async with GraphAsyncHook() as ahook:
            run_id = await ahook.start_insights_report(
                "77", {"level": "campaign", "date_preset": "yesterday"}
            )
            runs = await async_wait_for(
                lambda: ahook.get_report_runs(run_id),
                lambda runs: report_run_done(runs[run_id]),
                f"report run {run_id} to end",
            )
            return run_id, runs[run_id], [row async for row in ahook.iter_report_rows(run_id)]

    run_id, run, rows = asyncio.run(walk())
    yesterday = (dt.date(*time.gmtime()[:3]) - dt.timedelta(days=1)).isoformat()
    assert run == {
        "id": run_id,
        "account_id": "77",
        "async_status": "Job Completed",
        "async_percent_completion": 100,
        "date_start": yesterday,
        "date_stop": yesterday,
    }
    assert len(rows) == 2
    assert all(r["account_id"] == "77" and r["date_start"] == yesterday for r in rows)
    starts = [c for c in graph_conn.calls() if c["kind"] == "insights_start"]
    assert [(c["method"], c["path"]) for c in starts] == [("POST", "/v25.0/act_77/insights")]


def test_job_failed_is_visible_and_its_rows_are_refused(graph_conn: EmulatorAdmin) -> None:
    graph_conn.config(insights_pace=500)
    graph_conn.fault("job_failed", count=1)
    hook = GraphHook()
    failed = hook.start_insights_report(ACT, {"time_range": JAN})
    fine = hook.start_insights_report(ACT, {"time_range": JAN})
    runs = wait_runs(
        lambda: hook.get_report_runs([failed, fine]),
        lambda r: r["async_status"] in JOB_FAILED_STATUSES or report_run_done(r),
    )
    assert runs[failed]["async_status"] == "Job Failed"
    assert not report_run_done(runs[failed])
    assert report_run_done(runs[fine])
    with pytest.raises(GraphAPIError) as err:
        list(hook.iter_report_rows(failed))
    assert err.value.code == 100
    assert len(list(hook.iter_report_rows(fine))) == 1


@pytest.mark.parametrize(
    ("account", "params", "named"),
    [
        ("act_x1", {}, "ad_account_id"),
        (None, {}, "ad_account_id"),
        (ACT, ["level", "ad"], "dict, got list"),
        (ACT, {"level": "creative"}, "'level'"),
        (ACT, {"time_range": {"since": "2025-01-02", "until": "2025-01-01"}}, "'time_range'"),
        (ACT, {"time_range": {"since": "yesterday", "until": "2025-01-01"}}, "since must be a date"),
        (ACT, {"time_range": ("2025-01-01", "2025-01-02")}, "'time_range'"),
        (ACT, {"time_increment": 0}, "'time_increment'"),
        (ACT, {"time_increment": True}, "'time_increment'"),
        (ACT, {"fields": []}, "'fields'"),
        (ACT, {"fields": ["impressions", 3]}, "'fields'"),
        (ACT, {"filtering": [{"operator": "IN"}]}, "'filtering'"),
        (ACT, {"filtering": [{"field": "ad.id", "value": {1, 2}}]}, "set is not JSON"),
        (
            ACT,
            {"action_attribution_windows": {"7d_click"}},
            "'action_attribution_windows': value of type set",
        ),
        (ACT, {"sort": [b"spend"]}, "type bytes"),
        (ACT, {1: "x"}, "names must be non-empty strings"),
    ],
)
def test_bad_input_is_refused_before_any_call(
    graph_conn: EmulatorAdmin, account: Any, params: Any, named: str
) -> None:
    with pytest.raises(GraphInputError, match=named.replace("(", r"\(")):
        GraphHook().start_insights_report(account, params)
    assert graph_conn.http_calls() == 0


def test_reads_of_a_throttled_accounts_runs_wait_for_its_block(graph_conn: EmulatorAdmin) -> None:
    hook = GraphHook()
    account = "act_9191"
    run_id = hook.start_insights_report(account, {"date_preset": "today"})
    # The account's ads_insights use case is blocked for 4 "minutes" (4 x 0.05 s on both sides).
    graph_conn.fault("throttle", count=1, path_regex=f"{account}/insights", regain_minutes=4)
    with pytest.raises(GraphThrottledError):
        hook.request("GET", f"{account}/insights", max_retries=0)
    assert hook.throttle.blocked_for(account) > 0
    runs = hook.get_report_runs([run_id])  # its path names no account: the hook knows the run's
    assert runs[run_id]["account_id"] == "9191"
    counters = graph_conn.counters()
    assert counters["throttled_calls"] == 0  # never sent into the block
    assert [c["status"] for c in graph_conn.calls() if c["kind"] == "get_multi"] == [200]


@pytest.mark.parametrize("run_id", [["1", "2"], "", " ", "1/insights", "1,2", True, None])
def test_a_bad_report_run_id_is_refused_before_any_call(graph_conn: EmulatorAdmin, run_id: Any) -> None:
    with pytest.raises(GraphInputError, match="report_run_id must be one report run id"):
        list(GraphHook().iter_report_rows(run_id))
    assert graph_conn.http_calls() == 0


def test_parameters_are_encoded_as_graph_reads_them() -> None:
    encoded = insights_params(
        {
            "fields": ("ad_id", "impressions"),
            "level": " AD ",
            "time_range": {"since": dt.datetime(2025, 1, 1, 12), "until": dt.date(2025, 1, 31)},
            "time_increment": 7,
            "filtering": [{"field": "ad.id", "operator": "IN", "value": ("1", "2")}],
            "time_ranges": [{"since": dt.date(2025, 2, 1), "until": "2025-02-02"}],
            "use_unified_attribution_setting": True,
            "breakdowns": None,
        }
    )
    assert encoded == {
        "fields": "ad_id,impressions",
        "level": "ad",
        "time_range": '{"since":"2025-01-01","until":"2025-01-31"}',
        "time_increment": "7",
        "filtering": '[{"field":"ad.id","operator":"IN","value":["1","2"]}]',
        "time_ranges": '[{"since":"2025-02-01","until":"2025-02-02"}]',
        "use_unified_attribution_setting": "true",
    }


@pytest.mark.parametrize(
    ("since", "until", "halves"),
    [
        ("2025-03-01", "2025-03-02", (("2025-03-01", "2025-03-01"), ("2025-03-02", "2025-03-02"))),
        ("2025-03-01", "2025-03-05", (("2025-03-01", "2025-03-03"), ("2025-03-04", "2025-03-05"))),
        ("2025-02-27", "2025-03-02", (("2025-02-27", "2025-02-28"), ("2025-03-01", "2025-03-02"))),
        ("2024-12-31", "2025-01-02", (("2024-12-31", "2025-01-01"), ("2025-01-02", "2025-01-02"))),
    ],
)
def test_split_range_halves_cover_every_day_once(
    since: str, until: str, halves: tuple[tuple[str, str], tuple[str, str]]
) -> None:
    assert split_range(since, until) == halves


def test_a_single_day_cannot_be_split() -> None:
    with pytest.raises(ValueError, match="cannot split a range of 1 day"):
        split_range("2025-03-01", "2025-03-01")
