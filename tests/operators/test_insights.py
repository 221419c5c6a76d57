"""InsightsReportOperator against the emulator over HTTP: many accounts, deferral, JSON Lines or XCom,
failed and skipped runs started again or split, never a duplicate row."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.exceptions import TaskDeferred

from airflow_fb_async.exceptions import GraphInputError, InsightsReportError, TooManyResultsError
from airflow_fb_async.hooks.graph import GraphHook
from airflow_fb_async.operators.insights import InsightsReportOperator
from airflow_fb_async.triggers.insights import AsyncReportRunTrigger
from tests.conftest import TEST_TOKEN, run_dag
from tests.emu_admin import EmulatorAdmin

CTX: Any = {}
FIELDS = ["campaign_id", "impressions", "spend"]
TEN_DAYS = {"since": "2025-03-01", "until": "2025-03-10"}


def make_campaigns(account: str, n: int) -> list[str]:
    hook = GraphHook()
    return [
        hook.post(f"{account}/campaigns", data={"name": f"{account} c{i}", "objective": "OUTCOME_TRAFFIC"})[
            "id"
        ]
        for i in range(n)
    ]


def operator(**kwargs: Any) -> InsightsReportOperator:
    defaults: dict[str, Any] = {
        "task_id": "insights",
        "fields": FIELDS,
        "level": "campaign",
        "poll_interval": 0.01,
        "deferrable": False,
    }
    return InsightsReportOperator(**{**defaults, **kwargs})


def run(op: InsightsReportOperator, context: Any = CTX) -> tuple[Any, int]:
    """Execute the operator as Airflow would, deferrals included; ``(result, deferrals)``.

    Each trigger is rebuilt from its ``serialize()`` and the resume kwargs go through JSON, as they
    do through the metadata DB. ``context`` is one try's (a task state store in it is kept by tries).
    """
    deferrals = 0
    call = lambda: op.execute(context)  # noqa: E731
    while True:
        try:
            return call(), deferrals
        except TaskDeferred as deferred:
            deferrals += 1
            path, kwargs = deferred.trigger.serialize()
            assert path == "airflow_fb_async.triggers.insights.AsyncReportRunTrigger"
            trigger = AsyncReportRunTrigger(**json.loads(json.dumps(kwargs)))
            event = asyncio.run(anext(trigger.run())).payload  # type: ignore[attr-defined]
            assert TEST_TOKEN not in json.dumps(event)
            resume = json.loads(json.dumps(deferred.kwargs or {}))
            method = getattr(op, deferred.method_name)
            call = lambda method=method, event=event, resume=resume: method(  # noqa: E731
                context, event=event, **resume
            )


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def report_runs(emu: EmulatorAdmin) -> list[dict[str, Any]]:
    return emu.objects("report_run")


def days(since: str, until: str) -> list[str]:
    first, last = dt.date.fromisoformat(since), dt.date.fromisoformat(until)
    return [(first + dt.timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]


@pytest.mark.parametrize("deferrable", [True, False], ids=["deferrable", "worker"])
def test_three_accounts_to_json_lines(graph_conn: EmulatorAdmin, tmp_path: Path, deferrable: bool) -> None:
    camps = {act: make_campaigns(act, 3) for act in ("act_11", "act_12", "act_13")}
    out = tmp_path / "out" / "insights.jsonl"
    result, deferrals = run(
        operator(
            ad_account_ids=["act_11", "12", 13, "act_11"],
            time_range={"since": dt.date(2025, 3, 1), "until": "2025-03-04"},
            time_increment=1,
            output_path=str(out),
            deferrable=deferrable,
            page_size=5,
        )
    )
    rows = read_jsonl(out)
    assert len(rows) == 3 * 3 * 4
    keys = Counter((r["account_id"], r["campaign_id"], r["date_start"]) for r in rows)
    assert set(keys.values()) == {1}
    for act, ids in camps.items():
        mine = [r for r in rows if r["account_id"] == act.removeprefix("act_")]
        assert {r["campaign_id"] for r in mine} == set(ids)
        assert {r["date_start"] for r in mine} == set(days("2025-03-01", "2025-03-04"))
    # Graph leaves account_id out when fields do not ask for it: the operator adds it, first.
    assert list(rows[0])[:2] == ["account_id", "campaign_id"]
    assert result["path"] == str(out)
    assert result["count"] == 36
    assert sorted(
        (v["account_id"], v["rows"], v["async_status"]) for v in result["report_runs"].values()
    ) == [
        ("11", 12, "Job Completed"),
        ("12", 12, "Job Completed"),
        ("13", 12, "Job Completed"),
    ]
    assert sorted(result["report_runs"]) == sorted(r["id"] for r in report_runs(graph_conn))
    counters = graph_conn.counters()
    assert counters["calls_by_kind"]["insights_start"] == 3  # the duplicate account is reported once
    assert (deferrals > 0) is deferrable
    assert not any(p.name.startswith(".") for p in out.parent.iterdir())  # no temporary file left
    assert TEST_TOKEN not in out.read_text()


def test_rows_as_xcom_and_the_limit(graph_conn: EmulatorAdmin) -> None:
    make_campaigns("act_21", 2)
    rows, _ = run(operator(ad_account_ids="act_21", time_range=TEN_DAYS, time_increment=1))
    assert len(rows) == 20
    assert {r["account_id"] for r in rows} == {"21"}
    with pytest.raises(TooManyResultsError, match=r"max_xcom_items=19.*output_path"):
        run(operator(ad_account_ids="act_21", time_range=TEN_DAYS, time_increment=1, max_xcom_items=19))


def test_a_failed_range_is_split_until_every_day_is_covered_exactly_once(
    graph_conn: EmulatorAdmin, tmp_path: Path
) -> None:
    """Graph fails reports over 3 days: 10 days -> 5 + 5 -> (3 + 2) + (3 + 2), each day once."""
    graph_conn.config(insights_fail_above_days=3)
    camps = make_campaigns("act_31", 2)
    out = tmp_path / "split.jsonl"
    result, deferrals = run(
        operator(
            ad_account_ids="act_31", time_range=TEN_DAYS, time_increment=1, output_path=out, deferrable=True
        )
    )
    rows = read_jsonl(out)
    keys = Counter((r["campaign_id"], r["date_start"]) for r in rows)
    assert set(keys.values()) == {1}
    assert set(keys) == {(c, d) for c in camps for d in days("2025-03-01", "2025-03-10")}
    kept = sorted((v["date_start"], v["date_stop"]) for v in result["report_runs"].values())
    assert kept == [
        ("2025-03-01", "2025-03-03"),
        ("2025-03-04", "2025-03-05"),
        ("2025-03-06", "2025-03-08"),
        ("2025-03-09", "2025-03-10"),
    ]
    runs = report_runs(graph_conn)
    failed = sorted((r["date_start"], r["date_stop"]) for r in runs if r["async_status"] == "Job Failed")
    assert failed == [
        ("2025-03-01", "2025-03-05"),
        ("2025-03-01", "2025-03-10"),
        ("2025-03-06", "2025-03-10"),
    ]
    assert len(runs) == 7
    assert not set(result["report_runs"]) & {r["id"] for r in runs if r["async_status"] == "Job Failed"}
    assert deferrals >= 2


def test_a_failed_day_is_started_again_with_no_duplicate_row(
    graph_conn: EmulatorAdmin, tmp_path: Path
) -> None:
    """A one-day run fails once (after Graph computed half of it): it is started again, for the very
    day the preset resolved to, and its rows appear once."""
    camps = make_campaigns("act_41", 3)
    make_campaigns("act_42", 1)
    graph_conn.fault("job_failed", count=1, path_regex="act_41/insights")
    out = tmp_path / "retry.jsonl"
    result, _ = run(
        operator(
            ad_account_ids=["act_41", "act_42"], date_preset="yesterday", output_path=out, deferrable=True
        )
    )
    rows = read_jsonl(out)
    assert Counter(r["account_id"] for r in rows) == {"41": 3, "42": 1}
    assert sorted(r["campaign_id"] for r in rows if r["account_id"] == "41") == sorted(camps)
    runs = {r["id"]: r for r in report_runs(graph_conn)}
    statuses = Counter((r["account_id"], r["async_status"]) for r in runs.values())
    assert statuses == {("41", "Job Failed"): 1, ("41", "Job Completed"): 1, ("42", "Job Completed"): 1}
    (failed,) = [r for r in runs.values() if r["async_status"] == "Job Failed"]
    assert failed["id"] not in result["report_runs"]
    (again,) = [r for r in runs.values() if r["account_id"] == "41" and r["async_status"] == "Job Completed"]
    assert (again["date_start"], again["date_stop"]) == (failed["date_start"], failed["date_stop"])
    assert result["report_runs"][again["id"]]["rows"] == 3
    assert graph_conn.counters()["faults_injected"]["job_failed"] == 1


def test_a_failing_preset_is_resolved_to_its_dates_and_split(graph_conn: EmulatorAdmin) -> None:
    make_campaigns("act_51", 1)
    graph_conn.fault("job_failed", count=1)
    rows, _ = run(operator(ad_account_ids="act_51", date_preset="last_7d", time_increment=1))
    runs = report_runs(graph_conn)
    (failed,) = [r for r in runs if r["async_status"] == "Job Failed"]
    expected = days(failed["date_start"], failed["date_stop"])
    assert len(expected) == 7
    assert [r["date_start"] for r in rows] == expected  # in date order, each day once
    halves = sorted((r["date_start"], r["date_stop"]) for r in runs if r["async_status"] == "Job Completed")
    assert halves == [(expected[0], expected[3]), (expected[4], expected[6])]  # the earlier half: 4 days


def test_skipped_runs_are_started_again_up_to_max_job_retries(graph_conn: EmulatorAdmin) -> None:
    make_campaigns("act_61", 2)
    graph_conn.fault("job_skipped", count=2)
    rows, _ = run(operator(ad_account_ids="act_61", time_range=TEN_DAYS, max_job_retries=2))
    assert len(rows) == 2  # all_days: a skipped run is started again, never split
    assert Counter(r["async_status"] for r in report_runs(graph_conn)) == {
        "Job Skipped": 2,
        "Job Completed": 1,
    }

    graph_conn.fault("job_skipped", count=3)
    with pytest.raises(
        InsightsReportError, match=r"act_62 \(2025-03-01\.\.2025-03-10\).*Job Skipped after 2 restart"
    ):
        run(operator(ad_account_ids="act_62", time_range=TEN_DAYS, max_job_retries=2, deferrable=True))
    assert [r["async_status"] for r in report_runs(graph_conn) if r["account_id"] == "62"] == [
        "Job Skipped"
    ] * 3


def test_one_failing_day_fails_the_task_after_its_retries(graph_conn: EmulatorAdmin) -> None:
    graph_conn.fault("job_failed", count=5, path_regex="act_71/")
    with pytest.raises(
        InsightsReportError, match=r"act_71 \(2025-03-02\.\.2025-03-02\).*Job Failed after 1 restart"
    ):
        run(
            operator(
                ad_account_ids="act_71",
                time_range={"since": "2025-03-02", "until": "2025-03-02"},
                max_job_retries=1,
            )
        )
    # One day cannot be split: started once more, failed again, and the task fails.
    runs = report_runs(graph_conn)
    assert [(r["async_status"], r["date_start"]) for r in runs] == [("Job Failed", "2025-03-02")] * 2


@pytest.mark.parametrize("deferrable", [True, False], ids=["deferrable", "worker"])
def test_transient_read_errors_are_ridden_out(graph_conn: EmulatorAdmin, deferrable: bool) -> None:
    make_campaigns("act_95", 2)
    # The check before waiting spends the hook's 5 retries and gives up; the wait rides out the rest.
    graph_conn.fault("500", count=8, method="GET", path_regex=r"^/v25\.0/$")
    rows, _ = run(operator(ad_account_ids="act_95", date_preset="yesterday", deferrable=deferrable))
    assert len(rows) == 2
    assert graph_conn.counters()["faults_injected"]["500"] == 8


@pytest.mark.parametrize("deferrable", [True, False], ids=["deferrable", "worker"])
def test_runs_that_never_finish_end_in_a_timeout(graph_conn: EmulatorAdmin, deferrable: bool) -> None:
    graph_conn.config(insights_pace=0)  # every run stays "Job Not Started"
    op = operator(ad_account_ids="act_91", date_preset="yesterday", deferrable=deferrable)
    op.execution_timeout = dt.timedelta(seconds=0.5)
    with pytest.raises(InsightsReportError, match="timed out"):
        run(op)
    assert [r["async_status"] for r in report_runs(graph_conn)] == ["Job Not Started"]


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"ad_account_ids": ["act_1", "act_x"]}, r"ad_account_ids\[1\]: ad_account_id must be"),
        ({"ad_account_ids": []}, "ad_account_ids is empty"),
        ({"ad_account_ids": "act_1", "level": "creative"}, "'level'"),
        ({"ad_account_ids": "act_1", "fields": []}, "'fields'"),
        ({"ad_account_ids": "act_1", "date_preset": "yesterday", "time_range": TEN_DAYS}, "not both"),
        (
            {"ad_account_ids": "act_1", "time_range": {"since": "2025-03-02", "until": "2025-03-01"}},
            "after until",
        ),
        (
            {"ad_account_ids": "act_1", "report_params": {"level": "ad"}},
            "report_params: 'level' has an argument",
        ),
        ({"ad_account_ids": "act_1", "report_params": {"sort": {b"x"}}}, "'sort': value of type set"),
        ({"ad_account_ids": "act_1", "output_path": "/tmp/dir/"}, "output_path must name a file"),
    ],
)
def test_bad_input_is_refused_before_any_call(
    graph_conn: EmulatorAdmin, kwargs: dict[str, Any], named: str
) -> None:
    with pytest.raises(GraphInputError, match=named):
        operator(**kwargs).execute(CTX)
    assert graph_conn.http_calls() == 0


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"max_xcom_items": 0}, "max_xcom_items must be an int >= 1"),
        ({"max_job_retries": -1}, "max_job_retries must be an int >= 0"),
        ({"poll_interval": "soon"}, "poll_interval must be a number"),
    ],
)
def test_bad_static_arguments_fail_at_parse_time(kwargs: dict[str, Any], named: str) -> None:
    with pytest.raises(GraphInputError, match=named):
        operator(ad_account_ids="act_1", **kwargs)


def test_rendered_account_list_and_rows_read_page_by_page(graph_conn: EmulatorAdmin, tmp_path: Path) -> None:
    """A template that rendered a list to text works; rows are read one page at a time."""
    make_campaigns("act_81", 5)
    make_campaigns("act_82", 5)
    result, _ = run(
        operator(
            ad_account_ids="['act_81', 'act_82']",
            time_range=TEN_DAYS,
            time_increment=1,
            page_size=7,
            output_path=tmp_path / "p.jsonl",
        )
    )
    assert result["count"] == 100
    row_reads = [c for c in graph_conn.calls() if c["kind"] == "get_edge" and c["path"].endswith("/insights")]
    assert len(row_reads) == 2 * 8  # ceil(50 / 7) pages per run
    assert {c["query"].get("limit") for c in row_reads} == {"7"}


@pytest.mark.usefixtures("airflow_db")
def test_example_pipeline_pauses_exactly_the_ads_over_the_threshold(
    graph_conn: EmulatorAdmin, tmp_path: Path
) -> None:
    run = run_dag(
        "example_fb_insights_pipeline", work_dir=str(tmp_path), ads_per_account=10, spend_threshold=30.0
    )
    assert run.state == "success"
    (rows_file,) = tmp_path.glob("*/insights.jsonl")
    rows = read_jsonl(rows_file)
    ads = {ad["id"]: ad for ad in graph_conn.objects("ad")}
    assert sorted(r["ad_id"] for r in rows) == sorted(ads)  # every ad once: 3 accounts x 10
    assert len(rows) == 30
    assert {r["account_id"] for r in rows} == {"2222222221", "2222222222", "2222222223"}
    over = {r["ad_id"] for r in rows if float(r["spend"]) > 30.0}
    assert 0 < len(over) < 30
    assert {i for i, ad in ads.items() if ad["status"] == "PAUSED"} == over
    assert {i for i, ad in ads.items() if ad["status"] == "ACTIVE"} == set(ads) - over
    runs = report_runs(graph_conn)
    assert [r["async_status"] for r in runs] == ["Job Completed"] * 3
    assert TEST_TOKEN not in rows_file.read_text()


@pytest.mark.usefixtures("airflow_db")
def test_a_task_retry_after_a_failed_read_writes_every_row_once(
    graph_conn: EmulatorAdmin, tmp_path: Path
) -> None:
    """Try 1 writes a page, then the next page fails past the hook's retries: the task fails and
    leaves no file. Try 2 reads the same runs again (no new start); the file holds every row
    exactly once."""
    camps = make_campaigns("act_3301", 2) + make_campaigns("act_3302", 1)
    graph_conn.fault(
        "500", count=6, method="GET", path_regex=r"/insights\?.*after="
    )  # a page after the first
    out = tmp_path / "rows.jsonl"
    run = run_dag("test_insights_retry", output_path=str(out))
    assert run.state == "success"
    (ti,) = run.get_task_instances()
    assert ti.try_number == 2
    rows = read_jsonl(out)
    keys = Counter((r["campaign_id"], r["date_start"]) for r in rows)
    assert set(keys.values()) == {1}
    assert set(keys) == {(c, d) for c in camps for d in days("2025-03-01", "2025-03-10")}
    assert graph_conn.counters()["faults_injected"]["500"] == 6
    assert list(tmp_path.iterdir()) == [out]  # try 1 left no temporary file
    # Try 2 read the runs try 1 started (kept in the task state store): one per account, in all.
    assert Counter(r["async_status"] for r in report_runs(graph_conn)) == {"Job Completed": 2}
    assert graph_conn.counters()["calls_by_kind"]["insights_start"] == 2
