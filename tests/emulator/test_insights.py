"""Insights on the emulator, over plain HTTP: async report runs, their rows, sync reports, faults."""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path
from typing import Any

from airflow_fb_async.emulator import GraphEmulator
from tests.emu_admin import EmulatorAdmin
from tests.emulator.conftest import Graph, error_of
from tests.waits import wait_for

ACT = "act_4242"
ORDER = ["Job Not Started", "Job Started", "Job Running", "Job Completed"]
TERMINAL = {"Job Completed", "Job Failed", "Job Skipped"}
JAN = json.dumps({"since": "2025-01-01", "until": "2025-01-10"})


def campaigns(graph: Graph, n: int, account: str = ACT) -> list[str]:
    return [graph.create(account, "campaigns", name=f"c{i}", objective="OUTCOME_TRAFFIC") for i in range(n)]


def start(graph: Graph, node: str = ACT, **params: Any) -> str:
    answer = graph.ok(graph.post(f"{node}/insights", params))
    assert set(answer) == {"report_run_id"}
    return str(answer["report_run_id"])


def wait_run(graph: Graph, run_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Poll a report run until it ends; (last view, every view seen)."""
    seen: list[dict[str, Any]] = []

    def read() -> dict[str, Any]:
        seen.append(graph.ok(graph.get(run_id)))
        return seen[-1]

    view = wait_for(
        read, lambda v: v["async_status"] in TERMINAL, f"report run {run_id} to end", interval=0.01
    )
    return view, seen


def all_pages(graph: Graph, path: str, **params: Any) -> tuple[list[dict[str, Any]], int]:
    """Every row of a paged insights edge, following ``after``; (rows, pages)."""
    rows: list[dict[str, Any]] = []
    pages = 0
    while True:
        page = graph.ok(graph.get(path, **params))
        pages += 1
        rows.extend(page["data"])
        if "next" not in page.get("paging", {}):
            return rows, pages
        params = {**params, "after": page["paging"]["cursors"]["after"]}


def buc_types(headers: Any) -> set[str]:
    buc = json.loads(headers["X-Business-Use-Case-Usage"])
    return {entry["type"] for entries in buc.values() for entry in entries}


def test_report_run_paused_then_completes_and_pages_its_rows(graph: Graph, emu: EmulatorAdmin) -> None:
    emu.config(insights_pace=0)
    camps = campaigns(graph, 3)
    run_id = start(
        graph, level="campaign", time_range=JAN, time_increment=1, fields="campaign_id,impressions"
    )
    view = graph.ok(graph.get(run_id))
    assert view == {
        "id": run_id,
        "account_id": "4242",
        "time_ref": view["time_ref"],
        "time_completed": 0,
        "async_status": "Job Not Started",
        "async_percent_completion": 0,
        "date_start": "2025-01-01",
        "date_stop": "2025-01-10",
    }
    assert error_of(graph.get(f"{run_id}/insights"))["code"] == 100  # not before Job Completed
    assert graph.ok(graph.get(run_id))["async_status"] == "Job Not Started"  # paused stays put

    emu.config(insights_pace=400)
    final, seen = wait_run(graph, run_id)
    assert final["async_status"] == "Job Completed"
    assert final["async_percent_completion"] == 100
    assert final["time_completed"] >= final["time_ref"]
    statuses = [ORDER.index(v["async_status"]) for v in seen]
    percents = [v["async_percent_completion"] for v in seen]
    assert statuses == sorted(statuses)
    assert percents == sorted(percents)

    rows, pages = all_pages(graph, f"{run_id}/insights", limit=7)
    assert len(rows) == 30
    assert pages == 5
    keys = [(r["campaign_id"], r["date_start"]) for r in rows]
    assert len(set(keys)) == 30
    assert {r["campaign_id"] for r in rows} == set(camps)
    assert {r["date_start"] for r in rows} == {f"2025-01-{d:02d}" for d in range(1, 11)}
    assert all(set(r) == {"campaign_id", "impressions", "date_start", "date_stop"} for r in rows)
    assert all(r["date_start"] == r["date_stop"] and r["impressions"].isdigit() for r in rows)
    # The same question asked synchronously gets the same rows.
    sync, _ = all_pages(
        graph, f"{ACT}/insights", level="campaign", time_range=JAN, time_increment=1,
        fields="campaign_id,impressions", limit=100,
    )  # fmt: skip
    assert sync == rows
    kinds = emu.counters()["calls_by_kind"]
    assert kinds["insights_start"] == 1
    assert kinds["create"] == 3  # the campaigns; the report run is not a create
    assert emu.counters()["objects_created_by_type"]["report_run"] == 1


def test_metrics_are_deterministic_and_add_up_over_days(graph: Graph) -> None:
    camp = campaigns(graph, 1)[0]
    fields = "campaign_id,campaign_name,account_id,impressions,clicks,spend,reach"
    daily = graph.ok(
        graph.get(
            f"{ACT}/insights", level="campaign", time_range=JAN, time_increment=1, fields=fields, limit=50
        )
    )["data"]
    total = graph.ok(graph.get(f"{ACT}/insights", level="campaign", time_range=JAN, fields=fields))["data"]
    again = graph.ok(graph.get(f"{camp}/insights", time_range=JAN, fields=fields))["data"]
    assert len(daily) == 10
    assert len(total) == 1
    assert again == total
    row = total[0]
    assert (row["campaign_id"], row["campaign_name"], row["account_id"]) == (camp, "c0", "4242")
    assert (row["date_start"], row["date_stop"]) == ("2025-01-01", "2025-01-10")
    for metric in ("impressions", "clicks", "reach"):
        assert int(row[metric]) == sum(int(d[metric]) for d in daily)
    assert abs(float(row["spend"]) - sum(float(d["spend"]) for d in daily)) < 0.005
    monthly = graph.ok(
        graph.get(
            f"{ACT}/insights",
            time_range=json.dumps({"since": "2025-01-20", "until": "2025-03-05"}),
            time_increment="monthly",
        )
    )["data"]
    assert [(r["date_start"], r["date_stop"]) for r in monthly] == [
        ("2025-01-20", "2025-01-31"),
        ("2025-02-01", "2025-02-28"),
        ("2025-03-01", "2025-03-05"),
    ]
    assert all(r["account_id"] == "4242" and "campaign_id" not in r for r in monthly)  # account level


def test_date_presets(graph: Graph) -> None:
    today = dt.date(*time.gmtime()[:3])
    day = dt.timedelta(days=1)
    first = today.replace(day=1)
    expected = {
        "today": (today, today),
        "yesterday": (today - day, today - day),
        "last_7d": (today - 7 * day, today - day),
        "last_30d": (today - 30 * day, today - day),
        "this_month": (first, today),
        "last_month": ((first - day).replace(day=1), first - day),
    }
    for preset, (since, until) in expected.items():
        rows = graph.ok(graph.get(f"{ACT}/insights", date_preset=preset))["data"]
        assert [(r["date_start"], r["date_stop"]) for r in rows] == [(since.isoformat(), until.isoformat())]
    rows = graph.ok(graph.get(f"{ACT}/insights"))["data"]  # Graph's default: last_30d
    assert rows[0]["date_start"] == expected["last_30d"][0].isoformat()


def test_levels_object_nodes_and_filtering(graph: Graph) -> None:
    t = graph.tree(ACT)
    adset2 = graph.create(ACT, "adsets", name="S2", campaign_id=t["campaign"])
    ad2 = graph.create(ACT, "ads", name="A2", adset_id=adset2, creative={"creative_id": t["creative"]})
    other = graph.tree("act_77")  # another account's ad stays out
    by_ad = graph.ok(graph.get(f"{ACT}/insights", level="ad", fields="ad_id,adset_id,campaign_id"))["data"]
    assert [(r["ad_id"], r["adset_id"], r["campaign_id"]) for r in by_ad] == [
        (t["ad"], t["adset"], t["campaign"]),
        (ad2, adset2, t["campaign"]),
    ]
    under_campaign = graph.ok(graph.get(f"{t['campaign']}/insights", level="ad", fields="ad_id"))["data"]
    assert [r["ad_id"] for r in under_campaign] == [t["ad"], ad2]
    filtered = graph.ok(
        graph.get(
            f"{ACT}/insights",
            level="ad",
            fields="ad_id",
            filtering=f"[{{field:'adset.id',operator:'IN',value:['{adset2}']}}]",
        )
    )["data"]
    assert [r["ad_id"] for r in filtered] == [ad2]
    assert other["ad"] not in {r["ad_id"] for r in by_ad}


def test_bad_parameters_fail_before_any_run_is_created(graph: Graph, emu: EmulatorAdmin) -> None:
    bad: list[dict[str, str]] = [
        {"level": "creative"},
        {"date_preset": "last_century"},
        {"time_increment": "0"},
        {"time_increment": "weekly"},
        {"fields": "impressions,not_a_metric"},
        {"time_range": json.dumps({"since": "2025-02-01", "until": "2025-01-01"})},
        {"time_range": json.dumps({"since": "2025-02-30", "until": "2025-03-01"})},
        {"time_range": "{since:"},
    ]
    for params in bad:
        err = error_of(graph.post(f"{ACT}/insights", params))
        assert err["code"] == 100, (params, err)
        assert next(iter(params)) in err["message"] or "fields" in err["message"], err
        assert error_of(graph.get(f"{ACT}/insights", **params))["code"] == 100
    assert emu.objects("report_run") == []
    assert emu.counters()["calls_by_kind"]["insights_start"] == len(bad)


def test_a_throttled_insights_call_reports_the_ads_insights_use_case(
    graph: Graph, emu: EmulatorAdmin
) -> None:
    emu.config(regain_unit_seconds=0.05)
    emu.fault("throttle", count=1, path_regex=f"{ACT}/insights", regain_minutes=2)
    resp = graph.get(f"{ACT}/insights")
    assert error_of(resp)["code"] == 80004
    (entry,) = json.loads(resp.headers["X-Business-Use-Case-Usage"])["4242"]
    assert (entry["type"], entry["estimated_time_to_regain_access"]) == ("ads_insights", 2)


def test_job_failed_and_job_skipped_faults_hit_the_next_runs(graph: Graph, emu: EmulatorAdmin) -> None:
    emu.config(insights_pace=500)
    emu.fault("job_failed", count=2, path_regex="act_4242/insights")
    emu.fault("job_skipped", count=1)
    graph.ok(graph.get(f"{ACT}/insights"))  # plain calls do not take job faults
    other = start(graph, "act_5")  # job_failed is for act_4242 only: act_5's run takes job_skipped
    failed = [start(graph, time_range=JAN) for _ in range(2)]
    fine = start(graph, time_range=JAN)
    assert wait_run(graph, other)[0]["async_status"] == "Job Skipped"
    for run_id in failed:
        view = wait_run(graph, run_id)[0]
        assert (view["async_status"], view["async_percent_completion"]) == ("Job Failed", 50)
        assert error_of(graph.get(f"{run_id}/insights"))["code"] == 100
    assert wait_run(graph, fine)[0]["async_status"] == "Job Completed"
    assert len(graph.ok(graph.get(f"{fine}/insights"))["data"]) == 1
    counts = emu.counters()["faults_injected"]
    assert (counts["job_failed"], counts["job_skipped"]) == (2, 1)
    assert emu._get("faults")["faults"] == []


def test_runs_over_a_long_range_fail(graph: Graph, emu: EmulatorAdmin) -> None:
    emu.config(insights_pace=500, insights_fail_above_days=7)
    long = start(graph, time_range=json.dumps({"since": "2025-01-01", "until": "2025-01-08"}))
    short = start(graph, time_range=json.dumps({"since": "2025-01-01", "until": "2025-01-07"}))
    assert wait_run(graph, long)[0]["async_status"] == "Job Failed"
    assert wait_run(graph, short)[0]["async_status"] == "Job Completed"
    assert emu.counters()["faults_injected"]["job_failed"] == 0  # a config, not a queued fault


def test_multi_id_reads_and_the_ads_insights_use_case(graph: Graph, emu: EmulatorAdmin) -> None:
    emu.config(insights_pace=0)
    runs = [start(graph, f"act_{i}") for i in (1, 2, 3)]
    resp = graph.get("", ids=",".join(runs), fields="async_status,async_percent_completion")
    body = graph.ok(resp)
    assert body == {
        r: {"id": r, "async_status": "Job Not Started", "async_percent_completion": 0} for r in runs
    }
    assert buc_types(resp.headers) == {"ads_insights"}
    assert set(json.loads(resp.headers["X-Business-Use-Case-Usage"])) == {"1", "2", "3"}
    assert buc_types(graph.get(f"{ACT}/insights").headers) == {"ads_insights"}
    assert buc_types(graph.get(runs[0]).headers) == {"ads_insights"}
    assert buc_types(graph.get(ACT).headers) == {"ads_management"}
    assert emu.counters()["calls_by_kind"]["get_multi"] == 1
    assert error_of(graph.post(runs[0], {"name": "x"}))["code"] == 100  # a run cannot be updated


def test_insights_inside_a_standard_batch(graph: Graph, emu: EmulatorAdmin) -> None:
    emu.config(insights_pace=500)
    camp = campaigns(graph, 1)[0]
    resp = graph.batch(
        [
            {
                "method": "GET",
                "relative_url": f"v25.0/{ACT}/insights?level=campaign&fields=campaign_id,clicks",
            },
            {"method": "GET", "relative_url": f"{camp}/insights?fields=spend&time_range={JAN}"},
            {
                "method": "POST",
                "relative_url": f"{ACT}/insights",
                "body": "level=campaign&date_preset=yesterday",
            },
        ]
    )
    out = graph.ok(resp)
    assert [e["code"] for e in out] == [200, 200, 200]
    bodies = [json.loads(e["body"]) for e in out]
    assert [r["campaign_id"] for r in bodies[0]["data"]] == [camp]
    assert set(bodies[1]["data"][0]) == {"spend", "date_start", "date_stop"}
    run_id = bodies[2]["report_run_id"]
    for entry in out:
        headers = {h["name"]: h["value"] for h in entry["headers"]}
        assert buc_types(headers) == {"ads_insights"}
    assert wait_run(graph, run_id)[0]["async_status"] == "Job Completed"
    assert graph.ok(graph.get(f"{run_id}/insights"))["data"][0]["campaign_id"] == camp


def test_report_runs_survive_a_restart_with_a_state_file(tmp_path: Path) -> None:
    state = tmp_path / "emu.json"
    with GraphEmulator(port=0, tokens=["t"], state_file=str(state)) as first:
        first.configure(insights_pace=0)
        graph = Graph(first.url, token="t")
        camp = campaigns(graph, 1, account="act_8")[0]
        run_id = start(graph, "act_8", level="campaign", time_range=JAN)
        assert graph.ok(graph.get(run_id))["async_status"] == "Job Not Started"
    with GraphEmulator(port=0, tokens=["t"], state_file=str(state)) as second:  # default pace: it runs
        graph = Graph(second.url, token="t")
        assert wait_run(graph, run_id)[0]["async_status"] == "Job Completed"
        assert [r["campaign_id"] for r in graph.ok(graph.get(f"{run_id}/insights"))["data"]] == [camp]
