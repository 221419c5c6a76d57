"""InsightsReportOperator across tries of one task instance: the report runs an earlier try started
are read again, never started again (against the emulator over HTTP).

Each test plays the tries of one task instance with one context (a ``StubTI`` and a ``StubStore``
standing for Airflow 3.3's ``task_state_store``, kept from try to try); a try "dies" by leaving
with its deferral or its error, as a killed worker or a lost triggerer would leave it.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.exceptions import TaskDeferred

from airflow_fb_async.exceptions import GraphAPIError, GraphAuthError, InsightsReportError
from airflow_fb_async.operators._insights_state import STATE_KEY
from airflow_fb_async.operators.insights import InsightsReportOperator
from tests.emu_admin import EmulatorAdmin
from tests.operators.test_async_batch import StubStore, StubTI
from tests.operators.test_insights import (
    TEN_DAYS,
    days,
    make_campaigns,
    operator,
    read_jsonl,
    report_runs,
    run,
)

ACCOUNTS = ["act_1101", "act_1102"]
ONE_DAY = {"since": "2025-03-02", "until": "2025-03-02"}


def context(store: bool = True) -> dict[str, Any]:
    """One task instance's context; its tries share it (and its state store)."""
    out: dict[str, Any] = {"ti": StubTI(task_id="insights")}
    if store:
        out["task_state_store"] = StubStore()
    return out


def starts(emu: EmulatorAdmin) -> int:
    """``POST act_<id>/insights`` calls the emulator served."""
    return int(emu.counters()["calls_by_kind"].get("insights_start", 0))


def report(**kwargs: Any) -> InsightsReportOperator:
    defaults: dict[str, Any] = {"ad_account_ids": ACCOUNTS, "time_range": ONE_DAY, "deferrable": True}
    return operator(**{**defaults, **kwargs})


def die_deferred(emu: EmulatorAdmin, ctx: dict[str, Any], **kwargs: Any) -> None:
    """Try 1: start the runs and defer on them (runs paused, so it surely defers), then die."""
    emu.config(insights_pace=0)
    with pytest.raises(TaskDeferred):
        report(**kwargs).execute(ctx)
    emu.config(insights_pace=100)


def stored_runs(ctx: dict[str, Any]) -> list[str]:
    return [job["r"] for job in ctx["task_state_store"].data[STATE_KEY]["jobs"] if "r" in job]


@pytest.mark.parametrize("deferrable", [True, False], ids=["deferrable", "worker"])
def test_a_try_after_a_deferral_starts_no_new_run(graph_conn: EmulatorAdmin, deferrable: bool) -> None:
    camps = make_campaigns(ACCOUNTS[0], 2) + make_campaigns(ACCOUNTS[1], 1)
    ctx = context()
    die_deferred(graph_conn, ctx)
    assert starts(graph_conn) == 2
    first = stored_runs(ctx)
    assert sorted(first) == sorted(r["id"] for r in report_runs(graph_conn))

    rows, _ = run(report(deferrable=deferrable), ctx)  # try 2
    assert starts(graph_conn) == 2
    assert len(report_runs(graph_conn)) == 2
    assert sorted(r["campaign_id"] for r in rows) == sorted(camps)
    assert stored_runs(ctx) == first


def test_a_try_after_the_wait_reads_the_rows_without_a_new_start(
    graph_conn: EmulatorAdmin, tmp_path: Path
) -> None:
    """Try 1 waited to the end, then reading the rows failed past the hook's retries."""
    camps = make_campaigns(ACCOUNTS[0], 3)
    ctx = context()
    graph_conn.fault("500", count=6, method="GET", path_regex=r"^/v25\.0/\d+/insights")  # 1 + max_retries
    out = tmp_path / "rows.jsonl"
    with pytest.raises(GraphAPIError):
        run(report(ad_account_ids=ACCOUNTS[0], time_range=TEN_DAYS, time_increment=1, output_path=out), ctx)
    assert starts(graph_conn) == 1
    reads_before = graph_conn.counters()["calls_by_kind"]["get_multi"]

    result, deferrals = run(
        report(ad_account_ids=ACCOUNTS[0], time_range=TEN_DAYS, time_increment=1, output_path=out), ctx
    )
    assert starts(graph_conn) == 1
    assert deferrals == 0  # the run is completed: nothing to wait on
    assert graph_conn.counters()["calls_by_kind"]["get_multi"] == reads_before + 1  # one read of the run
    keys = Counter((r["campaign_id"], r["date_start"]) for r in read_jsonl(out))
    assert set(keys.values()) == {1}
    assert set(keys) == {(c, d) for c in camps for d in days("2025-03-01", "2025-03-10")}
    assert list(result["report_runs"]) == [r["id"] for r in report_runs(graph_conn)]


def test_a_changed_request_starts_new_runs_and_says_why(
    graph_conn: EmulatorAdmin, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    make_campaigns(ACCOUNTS[0], 1)
    make_campaigns(ACCOUNTS[1], 1)
    ctx = context()
    die_deferred(graph_conn, ctx)
    first = stored_runs(ctx)
    caplog.set_level(logging.INFO)
    rows, _ = run(report(fields=["campaign_id", "clicks"]), ctx)
    assert starts(graph_conn) == 4
    out, err = capfd.readouterr()  # the task logger writes there; stdlib logging to caplog
    assert "differs from the one of an earlier try" in out + err + caplog.text
    assert {"clicks", "campaign_id"} <= set(rows[0])
    assert not set(stored_runs(ctx)) & set(first)

    # Back to the first request: the state now belongs to the second one, so new runs again.
    run(report(), ctx)
    assert starts(graph_conn) == 6


def test_a_run_graph_no_longer_knows_is_started_again_once(graph_conn: EmulatorAdmin) -> None:
    ctx = context()
    die_deferred(graph_conn, ctx, ad_account_ids=ACCOUNTS[0])
    (vanished,) = stored_runs(ctx)
    graph_conn.reset()  # Graph forgot every object, the report run among them
    camps = make_campaigns(ACCOUNTS[0], 2)

    rows, _ = run(report(ad_account_ids=ACCOUNTS[0]), ctx)
    assert starts(graph_conn) == 1  # counters were reset with the objects: exactly one new start
    (again,) = report_runs(graph_conn)
    assert again["id"] != vanished
    assert sorted(r["campaign_id"] for r in rows) == sorted(camps)
    assert stored_runs(ctx) == [again["id"]]


def test_a_run_that_failed_meanwhile_is_split_as_in_one_try(graph_conn: EmulatorAdmin) -> None:
    """Graph fails reports over 3 days: the stored 10-day run failed after try 1 died; try 2 splits
    it (5 + 5 -> (3 + 2) + (3 + 2)) exactly as one try would, and never starts it again whole."""
    graph_conn.config(insights_fail_above_days=3)
    camps = make_campaigns(ACCOUNTS[0], 1)
    ctx = context()
    die_deferred(graph_conn, ctx, ad_account_ids=ACCOUNTS[0], time_range=TEN_DAYS, time_increment=1)
    rows, _ = run(report(ad_account_ids=ACCOUNTS[0], time_range=TEN_DAYS, time_increment=1), ctx)
    assert starts(graph_conn) == 7
    assert Counter(r["async_status"] for r in report_runs(graph_conn)) == {
        "Job Failed": 3,
        "Job Completed": 4,
    }
    assert sorted((r["campaign_id"], r["date_start"]) for r in rows) == [
        (camps[0], d) for d in days("2025-03-01", "2025-03-10")
    ]


def test_a_run_id_is_kept_as_soon_as_its_start_answered(graph_conn: EmulatorAdmin) -> None:
    """The second start of try 1 is refused: the first account's run is already in the store, and
    try 2 starts only the second account's."""
    make_campaigns(ACCOUNTS[0], 1)
    make_campaigns(ACCOUNTS[1], 1)
    ctx = context()
    graph_conn.fault("token_rejected", count=1, after=1, method="POST", path_regex="/insights$")
    with pytest.raises(GraphAuthError):
        report().execute(ctx)
    (kept,) = [r["id"] for r in report_runs(graph_conn)]
    assert stored_runs(ctx) == [kept]

    rows, _ = run(report(), ctx)
    assert len(report_runs(graph_conn)) == 2
    assert kept in stored_runs(ctx)
    assert sorted(stored_runs(ctx)) == sorted(r["id"] for r in report_runs(graph_conn))
    assert {r["account_id"] for r in rows} == {"1101", "1102"}


def test_without_a_state_store_a_try_starts_its_own_runs(graph_conn: EmulatorAdmin) -> None:
    """Airflow before 3.3 keeps nothing across tries: each try starts (and reads) its own runs."""
    make_campaigns(ACCOUNTS[0], 1)
    ctx = context(store=False)
    die_deferred(graph_conn, ctx, ad_account_ids=ACCOUNTS[0])
    rows, _ = run(report(ad_account_ids=ACCOUNTS[0]), ctx)
    assert starts(graph_conn) == 2
    assert len(rows) == 1


def test_a_cleared_task_that_gave_up_on_a_range_starts_it_again(graph_conn: EmulatorAdmin) -> None:
    """Each try has the whole max_job_retries budget, as before: try 1 gives up on a failed day
    (max_job_retries=0); the next try starts that day again instead of failing at once on the
    stored failed run."""
    camps = make_campaigns(ACCOUNTS[0], 1)
    ctx = context()
    graph_conn.fault("job_failed", count=1, path_regex="act_1101/")
    with pytest.raises(InsightsReportError, match="Job Failed after 0 restart"):
        run(report(ad_account_ids=ACCOUNTS[0], max_job_retries=0), ctx)
    rows, _ = run(report(ad_account_ids=ACCOUNTS[0], max_job_retries=0), ctx)
    assert starts(graph_conn) == 2
    assert Counter(r["async_status"] for r in report_runs(graph_conn)) == {
        "Job Failed": 1,
        "Job Completed": 1,
    }
    assert [r["campaign_id"] for r in rows] == camps


@pytest.mark.parametrize(
    "garbage",
    [{"v": 99, "jobs": []}, ["not", "a", "plan"], {"v": 1, "request": None, "jobs": "x"}],
    ids=["other format", "a list", "other request"],
)
def test_an_unreadable_state_starts_new_runs(graph_conn: EmulatorAdmin, garbage: Any) -> None:
    """Duplicate runs cost quota, never rows: a state this version cannot read is replaced."""
    make_campaigns(ACCOUNTS[0], 1)
    ctx = context()
    ctx["task_state_store"].data[STATE_KEY] = garbage
    rows, _ = run(report(ad_account_ids=ACCOUNTS[0]), ctx)
    assert len(rows) == 1
    assert starts(graph_conn) == 1
    assert stored_runs(ctx) == [r["id"] for r in report_runs(graph_conn)]
