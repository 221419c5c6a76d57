"""Benchmark a file-fed pipeline: N requests from a JSON Lines file through submit, wait and results.

Starts its own emulator (subprocess), writes ``--requests`` campaign creates to a JSON Lines file,
then in a fresh interpreter runs, one after the other, ``SubmitAsyncBatchOperator(requests_path=...)``,
``AsyncRequestSetSensor`` (on a worker, ``poke_interval`` 0.5 s) and
``AsyncRequestResultsOperator(output_path=...)``, each through ``op.execute`` with a small context
(a stub task instance and a dict-backed task state store). For each step it reports:

- peak RSS growth (``VmHWM - VmRSS`` after the high-water mark is reset, as in ``results.py``;
  goal < 100 MB for the whole pipeline);
- the size of the XCom the step returns (goal < 10 KB; the sensor's summary has the contract's
  shape, ``{set_id: {4 counts}}``, about 100 B per set: it is reported, not held to the goal);
- its HTTP calls, from the emulator's call log, against the minimum: ``ceil(N/1000)`` set creates;
  ``ceil(sets/50)`` multi-id reads per waiting round (a round ends when a set is read again);
  ``ceil(sets/50)`` count reads plus ``ceil(n_set/page)`` pages per set for the results (plus one
  trailing empty page per set when a set is a multiple of the page size).

Usage: ``python benchmarks/file_pipeline.py [--requests 100000] [--page-size 500]``
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from _common import ROOT, StubTI, admin, graph_conn, reset_peak, start_emulator, status_kb, stop_emulator

ACCOUNT = "act_100000"


class _Store(dict[str, Any]):
    def set(self, key: str, value: Any) -> None:
        self[key] = json.loads(json.dumps(value))

    def delete(self, key: str) -> None:
        self.pop(key, None)


def write_requests(path: Path, n: int) -> None:
    with path.open("w") as fh:
        for i in range(n):
            body = {"name": f"file bench {i}", "objective": "OUTCOME_TRAFFIC"}
            fh.write(
                json.dumps({"name": f"r{i}", "relative_url": f"{ACCOUNT}/campaigns", "body": body}) + "\n"
            )


def last_seq(url: str) -> int:
    return max((c["seq"] for c in admin(url, "calls")["calls"]), default=0)


def run_steps(url: str, source: str, out_dir: str, page_size: int) -> list[dict[str, Any]]:
    """The three steps in this (fresh) interpreter; per step: time, RSS growth, XCom size, call seqs."""
    from airflow_fb_async.operators.async_batch import SubmitAsyncBatchOperator
    from airflow_fb_async.operators.results import AsyncRequestResultsOperator
    from airflow_fb_async.sensors.async_request_set import AsyncRequestSetSensor

    context: dict[str, Any] = {"ti": StubTI("step"), "task_state_store": _Store()}
    steps: list[dict[str, Any]] = []
    start_kb = status_kb("VmRSS")  # after the imports, before the first step

    def step(name: str, op: Any) -> Any:
        seq = last_seq(url)
        reset_peak()
        base = status_kb("VmRSS")
        started = time.perf_counter()
        value = op.execute(context)
        seconds = time.perf_counter() - started
        hwm = status_kb("VmHWM")
        steps.append(
            {
                "growth_since_start_mb": (hwm - start_kb) / 1024,
                "step": name,
                "seconds": seconds,
                "rss_growth_mb": (hwm - base) / 1024,
                "xcom_chars": len(json.dumps(value)),
                "seq": [seq, last_seq(url)],
            }
        )
        return value

    set_ids = step(
        "submit",
        SubmitAsyncBatchOperator(
            task_id="submit", ad_account_id=ACCOUNT, requests_path=source, name="file bench"
        ),
    )
    step(
        "wait",
        AsyncRequestSetSensor(task_id="wait", request_set_ids=set_ids, deferrable=False, poke_interval=0.5),
    )
    step(
        "results",
        AsyncRequestResultsOperator(
            task_id="results",
            request_set_ids=set_ids,
            output_path=f"{out_dir}/results.jsonl",
            page_size=page_size,
        ),
    )
    steps.append({"set_ids": set_ids})
    return steps


def waiting_rounds(calls: list[dict[str, Any]]) -> list[list[int]]:
    """Multi-id reads grouped into rounds (a new round starts when a set is read again): ids per call."""
    rounds: list[list[int]] = []
    seen: set[str] = set()
    for call in calls:
        if call["kind"] != "get_multi":
            continue
        ids = str(call["query"].get("ids", "")).split(",")
        if not rounds or seen & set(ids):
            rounds.append([])
            seen = set()
        rounds[-1].append(len(ids))
        seen |= set(ids)
    return rounds


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--page-size", type=int, default=500)
    parser.add_argument("--phase-args", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase_args:  # the child: run the steps, print their figures
        url, source, out_dir = json.loads(args.phase_args)
        print(json.dumps(run_steps(url, source, out_dir, args.page_size)))
        return 0

    home = tempfile.mkdtemp(prefix="fb_bench_file_")
    work = tempfile.mkdtemp(prefix="fb_bench_file_out_")
    proc, url = start_emulator("--async-pace", "100000")
    try:
        env = dict(os.environ)
        env.update(
            {
                "AIRFLOW_HOME": home,
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__UNIT_TEST_MODE": "True",
                "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
                "AIRFLOW_CONN_FACEBOOK_GRAPH_DEFAULT": graph_conn(url, page_size=args.page_size),
            }
        )
        # A pace of 500 requests a second per set: the sets take about 2 s, so the wait has rounds.
        config = {"usage_budget": 10**9, "max_page_size": max(500, args.page_size), "async_pace": 500}
        admin(url, "config", config)
        n = args.requests
        source = Path(work) / "requests.jsonl"
        write_requests(source, n)
        print(f"requests file: {n} lines, {source.stat().st_size / 1e6:.1f} MB (emulator {url})")
        cmd = [sys.executable, __file__, "--page-size", str(args.page_size)]
        cmd += ["--phase-args", json.dumps([url, str(source), work])]
        child = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
        if child.returncode != 0:
            print(child.stdout[-3000:], child.stderr[-3000:])
            return 1
        *steps, tail = json.loads(child.stdout.strip().splitlines()[-1])
        set_ids = tail["set_ids"]
        calls = admin(url, "calls")["calls"]
        sets = len(set_ids)
        with open(f"{work}/results.jsonl", "rb") as fh:
            lines = sum(1 for _ in fh)
        ok = lines == n
        print(f"\n{'step':<8} {'seconds':>8} {'RSS growth':>11} {'XCom':>8}  HTTP calls")
        for s in steps:
            lo, hi = s["seq"]
            kinds = Counter(c["kind"] for c in calls if lo < c["seq"] <= hi)
            print(
                f"{s['step']:<8} {s['seconds']:>8.1f} {s['rss_growth_mb']:>8.1f} MB {s['xcom_chars']:>6} B  {dict(kinds)}"
            )
            if s["xcom_chars"] >= 10_000:
                # The sensor's XCom has the contract's shape {set_id: {4 counts}}: ~100 B per set.
                print(f"         XCom above the 10 KB goal ({s['xcom_chars']} B for {len(set_ids)} sets)")
                ok = ok and s["step"] == "wait"
            if s["step"] == "submit":
                creates = kinds["async_batch_create"]
                print(f"         creates {creates}, minimum ceil(N/1000) = {math.ceil(n / 1000)}")
                ok = ok and creates == math.ceil(n / 1000) == sets
            if s["step"] == "wait":
                rounds = waiting_rounds([c for c in calls if lo < c["seq"] <= hi])
                per_round = {len(r) for r in rounds}
                print(
                    f"         {len(rounds)} round(s), calls per round {sorted(per_round)}, ids per call <= "
                    f"{max((max(r) for r in rounds), default=0)}; minimum ceil(sets/50) = {math.ceil(sets / 50)}"
                )
                ok = ok and all(len(r) <= math.ceil(sets / 50) for r in rounds)
            if s["step"] == "results":
                per_set = math.ceil(n / sets / args.page_size) if sets else 0
                minimum = math.ceil(sets / 50) + sets * per_set
                trailing = sets if (n // max(sets, 1)) % args.page_size == 0 else 0
                print(
                    f"         pages+reads {sum(kinds.values())}, minimum ceil(sets/50) + sets*ceil(n_set/page) = "
                    f"{minimum} (+{trailing} trailing empty pages allowed)"
                )
                ok = ok and minimum <= sum(kinds.values()) <= minimum + trailing
        peak = max(s["growth_since_start_mb"] for s in steps)
        print(
            f"\nresults file: {lines} lines; peak RSS growth over the pipeline: {peak:.1f} MB (goal < 100 MB)"
        )
        ok = ok and peak < 100
        print("RESULT:", "PASS" if ok else "FAIL")
        return 0 if ok else 1
    finally:
        stop_emulator(proc)
        shutil.rmtree(home, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
