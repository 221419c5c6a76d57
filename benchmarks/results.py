"""Benchmark AsyncRequestResultsOperator: HTTP calls and memory for 100,000 results.

Starts its own emulator (subprocess), creates ``--sets`` async request sets of ``--per-set`` small
campaign creates each (one POST per set), waits until they are processed, then runs the operator
(``op.execute``) twice on the same data:

1. ``output_path`` (JSON Lines, streamed): HTTP calls vs the expected count, peak RSS growth;
2. list mode (``max_xcom_items`` raised), for comparison of peak RSS growth.

Expected calls: ``ceil(sets / 50)`` multi-id count reads + for each set ``ceil(n / page_size)`` pages,
plus one trailing empty page per set when Graph answers a full last page with a ``next`` link
(bound: ``sets + ceil(results / page_size)`` page reads when every set is a multiple of the page size).

Peak RSS growth: each phase runs in a fresh interpreter (so nothing allocated by the setup or the
other phase is reused); after the imports the high-water mark is reset through
``/proc/self/clear_refs`` (Linux), and growth is ``VmHWM - VmRSS`` from ``/proc/self/status``.

Usage: ``python benchmarks/results.py [--sets 100] [--per-set 1000] [--page-size 500]``
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

import requests
from _common import (
    API,
    ROOT,
    TOKEN,
    admin,
    create_sets,
    graph_conn,
    reset_peak,
    start_emulator,
    status_kb,
    stop_emulator,
)

# ---------------------------------------------------------------------- setup


def wait_completed(url: str, set_ids: list[str], timeout: float = 600) -> None:
    session = requests.Session()
    deadline = time.monotonic() + timeout
    pending = list(set_ids)
    while pending:
        chunk = pending[:50]
        resp = session.get(
            f"{url}/{API}/",
            params={"ids": ",".join(chunk), "fields": "is_completed", "access_token": TOKEN},
            timeout=120,
        )
        resp.raise_for_status()
        body = resp.json()
        done = [i for i in chunk if body.get(i, {}).get("is_completed")]
        pending = [i for i in pending if i not in done]
        if pending and len(done) < len(chunk):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{len(pending)} sets not completed after {timeout} s")
            time.sleep(0.5)


# ---------------------------------------------------------------------- the measured phases


def run_phase(mode: str, set_ids: list[str], out_dir: str, page_size: int, n_results: int) -> dict[str, Any]:
    """Run the operator once; return timings and memory. Runs in this process or a child."""
    from airflow_fb_async.operators.results import AsyncRequestResultsOperator

    kwargs: dict[str, Any] = {"request_set_ids": set_ids, "page_size": page_size}
    if mode == "file":
        kwargs["output_path"] = f"file://{out_dir}/results.jsonl"
    else:
        kwargs["max_xcom_items"] = n_results + 1
    op = AsyncRequestResultsOperator(task_id=f"results_{mode}", **kwargs)

    reset_peak()
    base_kb = status_kb("VmRSS")
    started = time.perf_counter()
    out = op.execute({})
    elapsed = time.perf_counter() - started
    peak_kb = status_kb("VmHWM")
    summary = out if mode == "file" else {"count": len(out)}
    del out
    return {
        "mode": mode,
        "seconds": elapsed,
        "rss_growth_mb": (peak_kb - base_kb) / 1024,
        "baseline_rss_mb": base_kb / 1024,
        "summary": summary,
    }


def measure(mode: str, set_ids: list[str], out_dir: str, page_size: int, n_results: int) -> dict[str, Any]:
    """Run one phase in a fresh interpreter, so no earlier allocation (setup, the other mode) hides growth."""
    ids_file = Path(out_dir) / "set_ids.json"
    ids_file.write_text(json.dumps(set_ids))
    cmd = [sys.executable, __file__, "--phase", mode, "--phase-args", json.dumps([str(ids_file), out_dir])]
    cmd += ["--page-size", str(page_size), "--n-results", str(n_results)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"phase {mode} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def phase_main(args: argparse.Namespace) -> int:
    ids_file, out_dir = json.loads(args.phase_args)
    set_ids = json.loads(Path(ids_file).read_text())
    result = run_phase(args.phase, set_ids, out_dir, args.page_size, args.n_results)
    print(json.dumps(result))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sets", type=int, default=100)
    parser.add_argument("--per-set", type=int, default=1000)
    parser.add_argument("--page-size", type=int, default=500)
    parser.add_argument("--verbose", action="store_true", help="show the operator's progress log")
    parser.add_argument("--phase", choices=["file", "list"], help=argparse.SUPPRESS)
    parser.add_argument("--phase-args", help=argparse.SUPPRESS)
    parser.add_argument("--n-results", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        return phase_main(args)  # a child run by measure(): environment already set up

    home = tempfile.mkdtemp(prefix="fb_bench_results_")
    os.environ["AIRFLOW_HOME"] = home
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "True")
    # Quiet the per-page progress lines (200 of them); --verbose keeps them.
    if not args.verbose:
        os.environ["AIRFLOW__LOGGING__LOGGING_LEVEL"] = "WARNING"
    sys.path.insert(0, str(ROOT))

    proc, url = start_emulator("--async-pace", "100000")
    out_dir = ""
    try:
        os.environ["AIRFLOW_CONN_FACEBOOK_GRAPH_DEFAULT"] = graph_conn(url, page_size=args.page_size)
        admin(url, "config", {"usage_budget": 10**9, "max_page_size": max(500, args.page_size)})
        n_results = args.sets * args.per_set
        t0 = time.perf_counter()
        set_ids = create_sets(url, args.sets, args.per_set)
        wait_completed(url, set_ids)
        print(
            f"setup: {args.sets} sets x {args.per_set} requests = {n_results} results "
            f"created and processed in {time.perf_counter() - t0:.1f} s (emulator {url})"
        )

        out_dir = tempfile.mkdtemp(prefix="fb_bench_results_out_")
        before = admin(url, "counters")
        last_seq = max((c["seq"] for c in admin(url, "calls")["calls"]), default=0)
        file_run = measure("file", set_ids, out_dir, args.page_size, n_results)
        after = admin(url, "counters")
        window = [c for c in admin(url, "calls")["calls"] if c["seq"] > last_seq]
        failed = Counter(f"{c['kind']} HTTP {c['status']}" for c in window if c["status"] != 200)

        calls = after["http_calls"] - before["http_calls"]
        kinds_before = before.get("calls_by_kind", {})
        kinds = {
            k: v - kinds_before.get(k, 0)
            for k, v in after.get("calls_by_kind", {}).items()
            if v - kinds_before.get(k, 0)
        }
        per_set_pages = sum(math.ceil(args.per_set / args.page_size) for _ in set_ids)
        multi = math.ceil(args.sets / 50)
        trailing = args.sets if args.per_set % args.page_size == 0 else 0
        upper = multi + per_set_pages + trailing
        with open(f"{out_dir}/results.jsonl", "rb") as fh:
            lines = sum(1 for _ in fh)

        print()
        print(f"output_path mode ({file_run['summary']['path']})")
        print(f"  count={file_run['summary']['count']} lines={lines}")
        print(f"  counts_by_status={file_run['summary']['counts_by_status']}")
        print(f"  time: {file_run['seconds']:.1f} s ({n_results / file_run['seconds']:.0f} results/s)")
        print(
            f"  HTTP calls for fetching: {calls} {kinds}"
            + (f" (non-200, retried: {dict(failed)})" if failed else "")
        )
        print(
            f"  expected: ceil(sets/50) + sum(ceil(n_set/page_size)) = {multi} + {per_set_pages} = "
            f"{multi + per_set_pages};  with one trailing empty page per full set: "
            f"ceil(sets/50) + sets + ceil(results/page_size) = {upper}"
        )
        retried = sum(failed.values())
        verdict = "OK" if multi + per_set_pages <= calls - retried <= upper else "UNEXPECTED"
        print(f"  -> {verdict}")
        print(
            f"  peak RSS growth: {file_run['rss_growth_mb']:.1f} MB (target < 50 MB; "
            f"fresh interpreter, baseline RSS {file_run['baseline_rss_mb']:.0f} MB after imports)"
        )

        list_run = measure("list", set_ids, out_dir, args.page_size, n_results)
        print()
        print(f"list mode (max_xcom_items={n_results + 1}): count={list_run['summary']['count']}")
        print(f"  time: {list_run['seconds']:.1f} s")
        print(
            f"  peak RSS growth: {list_run['rss_growth_mb']:.1f} MB "
            f"(baseline RSS {list_run['baseline_rss_mb']:.0f} MB after imports)"
        )
        ok = file_run["summary"]["count"] == n_results and lines == n_results
        ok = ok and verdict == "OK" and file_run["rss_growth_mb"] < 50
        print()
        print("RESULT:", "PASS" if ok else "FAIL")
        return 0 if ok else 1
    finally:
        stop_emulator(proc)
        shutil.rmtree(home, ignore_errors=True)
        if out_dir:
            shutil.rmtree(out_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
