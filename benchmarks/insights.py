"""Benchmark insights reports: polling 100 accounts' report runs, and 1,000,000 rows to JSON Lines.

Starts its own emulator (subprocess, so its memory is not counted) and measures:

1. **Calls per poll round, 100 accounts** (goal <= 2). One report run per account, waited on by
   ``AsyncReportRunTrigger`` on one event loop, the way a triggerer runs them: (a) one trigger with
   the 100 runs (``InsightsReportOperator`` with 100 accounts), (b) 100 triggers with one run each
   (an operator mapped over the accounts). Both share the loop's poller: a round reads the pending
   runs 50 per multi-id call. Calls are counted per round by a reader wrapped around the poller's
   hook (exact, no timing involved) and checked against the emulator's call log.
2. **Rows per second and peak RSS growth, 1,000,000 rows** (goal < 50 MB). One account with
   ``--campaigns`` campaigns, a report at ``level=campaign`` over ``--days`` days with
   ``time_increment=1`` (rows = campaigns x days). ``InsightsReportOperator(output_path=...)``
   starts the run and defers; the trigger waits; then ``execute_complete`` reads the rows page by
   page (``--page-size``) and streams them to a JSON Lines file. Measured on that last step: wall
   time and CPU time (rows/s), and the peak RSS growth (``VmHWM - VmRSS`` after resetting the
   high-water mark, as in ``results.py``).

Usage: ``python benchmarks/insights.py [--accounts 100] [--campaigns 1000] [--days 1000]
[--page-size 10000]``. The emulator's paging is O(rows) per page, so with a small page size part 2
measures the emulator more than the operator.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from _common import ROOT, StubTI, admin, graph_conn, reset_peak, start_emulator, status_kb, stop_emulator

CONN_ID = "facebook_graph_default"


# ---------------------------------------------------------------------- 1. calls per round


async def _wait_all(groups: list[list[str]], interval: float) -> dict[str, Any]:
    """Run one trigger per group on this loop; count the poller's calls per round."""
    from airflow_fb_async.triggers.insights import AsyncReportRunTrigger
    from airflow_fb_async.waiting.poller import PollerKey, open_hook_reader, shared_poller
    from airflow_fb_async.waiting.report_runs import REPORT_RUN_KIND

    per_round: Counter[int] = Counter()
    ids_per_call: list[int] = []
    poller: Any = None

    class CountingReader:
        def __init__(self, inner: Any) -> None:
            self.inner = inner

        async def get_objects(self, ids: Any, fields: Any = None) -> dict[str, Any]:
            ids = list(ids)
            per_round[poller.rounds] += 1
            ids_per_call.append(len(ids))
            result: dict[str, Any] = await self.inner.get_objects(ids, fields)
            return result

        async def aclose(self) -> None:
            await self.inner.aclose()

        def scrub(self, text: Any) -> str:
            return str(self.inner.scrub(text))

    async def open_counting(key: PollerKey) -> CountingReader:
        return CountingReader(await open_hook_reader(key))

    poller = shared_poller(CONN_ID, None, REPORT_RUN_KIND, open_reader=open_counting)
    triggers = [AsyncReportRunTrigger(group, poll_interval=interval) for group in groups]
    events = await asyncio.gather(*(anext(t.run()) for t in triggers))
    statuses = Counter(e.payload["status"] for e in events)
    runs = Counter(r["async_status"] for e in events for r in e.payload["report_runs"].values())
    return {
        "rounds": len(per_round),
        "calls": sum(per_round.values()),
        "max_calls_per_round": max(per_round.values(), default=0),
        "max_ids_per_call": max(ids_per_call, default=0),
        "events": dict(statuses),
        "runs": dict(runs),
    }


def poll_rounds(url: str, accounts: int, interval: float) -> None:
    from airflow_fb_async.hooks.graph import GraphHook

    hook = GraphHook()
    admin(url, "config", {"insights_pace": 20})  # a run takes about 5 s: several rounds
    for label, one_trigger in (("1 trigger x 100 runs", True), ("100 triggers x 1 run", False)):
        runs = [
            hook.start_insights_report(f"act_{9000 + i}", {"date_preset": "yesterday"})
            for i in range(accounts)
        ]
        before = admin(url, "counters")["calls_by_kind"].get("get_multi", 0)
        groups = [runs] if one_trigger else [[r] for r in runs]
        got = asyncio.run(_wait_all(groups, interval))
        logged = admin(url, "counters")["calls_by_kind"].get("get_multi", 0) - before
        ok = "OK" if got["max_calls_per_round"] <= 2 else "ABOVE GOAL"
        label = label.replace("100", str(accounts))
        print(
            f"  {label:<24} rounds {got['rounds']:>3}, multi-id calls {got['calls']:>3} "
            f"(emulator log: {logged}), max calls/round {got['max_calls_per_round']} (goal <= 2: {ok}), "
            f"max ids/call {got['max_ids_per_call']}, events {got['events']}, runs {got['runs']}"
        )


# ---------------------------------------------------------------------- 2. rows to JSON Lines


def make_campaigns(account: str, n: int) -> None:
    from airflow_fb_async.hooks.graph import GraphHook

    requests = [
        {
            "method": "POST",
            "relative_url": f"{account}/campaigns",
            "body": {"name": f"bench {i}", "objective": "OUTCOME_TRAFFIC"},
        }
        for i in range(n)
    ]
    failed = [r for r in GraphHook().batch(requests, include_headers=False) if r["code"] != 200]
    if failed:
        raise RuntimeError(f"{len(failed)} campaign creates failed: {failed[:2]}")


def rows_to_jsonl(url: str, campaigns: int, days: int, page_size: int) -> None:
    from airflow.sdk.exceptions import TaskDeferred

    from airflow_fb_async.operators.insights import InsightsReportOperator
    from airflow_fb_async.triggers.insights import AsyncReportRunTrigger

    account = "act_777000"
    admin(url, "config", {"insights_pace": 100, "max_page_size": max(500, page_size)})
    t0 = time.perf_counter()
    make_campaigns(account, campaigns)
    since = dt.date(2023, 1, 1)
    until = since + dt.timedelta(days=days - 1)
    out_dir = Path(tempfile.mkdtemp(prefix="fb_bench_insights_"))
    out = out_dir / "rows.jsonl"
    op = InsightsReportOperator(
        task_id="insights",
        ad_account_ids=account,
        level="campaign",
        fields=["campaign_id", "impressions", "clicks", "spend"],
        time_range={"since": since.isoformat(), "until": until.isoformat()},
        time_increment=1,
        output_path=str(out),
        deferrable=True,
        poll_interval=1,
        page_size=page_size,
    )
    context: Any = {"ti": StubTI("insights")}
    try:
        op.execute(context)
        raise RuntimeError("the operator did not defer")
    except TaskDeferred as deferred:
        _, trigger_kwargs = deferred.trigger.serialize()
        trigger = AsyncReportRunTrigger(**trigger_kwargs)
        event = asyncio.run(anext(trigger.run())).payload  # type: ignore[attr-defined]
        resume = dict(deferred.kwargs or {})
    print(f"  setup: {campaigns} campaigns, run of {days} days computed in {time.perf_counter() - t0:.1f} s")

    rss_before = status_kb("VmRSS")
    exact_peak = reset_peak()
    wall0, cpu0 = time.perf_counter(), time.process_time()
    result = op.execute_complete(context, event=event, **resume)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    growth_mb = (status_kb("VmHWM") - rss_before) / 1024
    rows = result["count"]
    size_mb = out.stat().st_size / 1e6
    lines = sum(1 for _ in out.open("rb"))
    ok = "OK" if growth_mb < 50 else "ABOVE GOAL"
    peak_note = "" if exact_peak else " (VmHWM could not be reset: upper bound)"
    print(
        f"  {rows:,} rows ({lines:,} lines, {size_mb:.0f} MB) written in {wall:.1f} s: "
        f"{rows / wall:,.0f} rows/s end to end, {rows / max(cpu, 1e-9):,.0f} rows per CPU-second in the operator"
    )
    print(f"  peak RSS growth while reading and writing: {growth_mb:.1f} MB (goal < 50 MB: {ok}){peak_note}")
    print(f"  XCom: {len(json.dumps(result))} bytes")
    out.unlink()
    out_dir.rmdir()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--accounts", type=int, default=100)
    parser.add_argument("--poll-interval", type=float, default=0.5)
    parser.add_argument("--campaigns", type=int, default=1000)
    parser.add_argument("--days", type=int, default=1000)
    parser.add_argument("--page-size", type=int, default=10000)
    args = parser.parse_args()

    os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="fb_bench_insights_home_")
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "True")
    os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")
    sys.path.insert(0, str(ROOT))
    proc, url = start_emulator("--async-pace", "100000")
    try:
        os.environ["AIRFLOW_CONN_FACEBOOK_GRAPH_DEFAULT"] = graph_conn(url)
        admin(url, "config", {"usage_budget": 10**9})
        print(f"insights benchmark (emulator {url})")
        print(f"1. calls per poll round, {args.accounts} accounts (poll interval {args.poll_interval} s):")
        poll_rounds(url, args.accounts, args.poll_interval)
        print(f"2. {args.campaigns * args.days:,} rows to JSON Lines (page size {args.page_size}):")
        rows_to_jsonl(url, args.campaigns, args.days, args.page_size)
    finally:
        stop_emulator(proc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
