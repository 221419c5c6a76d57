"""Standard batch benchmark: GraphBatchOperator/GraphHook.batch vs the facebook-business SDK vs one call each.

Starts its own emulator (``python -m airflow_fb_async.emulator --port 0 --latency 0.05``), creates
N campaigns through the Graph API (no admin shortcuts), then runs the same N updates three ways:

1. ``GraphBatchOperator`` (-> ``GraphHook.batch``), default ``max_concurrency=4``;
2. the official SDK: ``FacebookAdsApi.init(...)``, pointed at the emulator through the session's
   ``GRAPH`` URL (configuration, no SDK code changed), 50 calls per ``api.new_batch()`` and
   ``while batch: batch = batch.execute()`` as the SDK documents;
3. one Graph call per update (plain ``hook.post``), on a sample (``--single-sample``) and
   extrapolated, since N sequential calls at the emulator's latency take minutes.

Prints wall times, ratios and HTTP call counts (the emulator's ``http_calls`` counter).
Usage: ``python benchmarks/batch.py [--n 5000] [--latency 0.05] [--single-sample 300]``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

import requests

TOKEN = "bench-token-0123456789abcdef"
ACCOUNT = "act_4242"


def start_emulator(latency: float) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "airflow_fb_async.emulator",
            "--port",
            "0",
            "--latency",
            str(latency),
            "--token",
            TOKEN,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = re.search(r"https?://[^\s)]+", line)
    if not match:
        proc.terminate()
        raise SystemExit(f"emulator did not print its URL: {line!r}")
    # Keep draining its stdout so it never blocks on (or dies of) a full or closed pipe.
    threading.Thread(target=proc.stdout.read, daemon=True).start()
    return proc, match.group(0).rstrip("/")


def http_calls(url: str) -> int:
    return int(requests.get(f"{url}/__admin/counters", timeout=10).json()["http_calls"])


def server_ms(url: str, after_calls: int) -> float:
    """Mean time the emulator spent per call (latency included) for calls after ``after_calls``."""
    calls = requests.get(f"{url}/__admin/calls", timeout=60).json()["calls"]
    ms = [c["ms"] for c in calls if c.get("seq", 0) > after_calls and c.get("ms") is not None]
    return sum(ms) / len(ms) if ms else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000, help="number of update requests")
    parser.add_argument("--latency", type=float, default=0.05, help="emulator latency per call (s)")
    parser.add_argument("--concurrency", type=int, default=4, help="GraphBatchOperator max_concurrency")
    parser.add_argument("--single-sample", type=int, default=300, help="one-call-per-request sample size")
    args = parser.parse_args()

    os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="fb_async_bench_"))
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    proc, url = start_emulator(args.latency)
    try:
        os.environ["AIRFLOW_CONN_FACEBOOK_GRAPH_DEFAULT"] = json.dumps(
            {"conn_type": "facebook_graph", "host": url, "password": TOKEN, "extra": {"api_version": "v25.0"}}
        )
        from airflow_fb_async.hooks.graph import GraphHook
        from airflow_fb_async.operators.batch import GraphBatchOperator

        n = args.n
        print(f"emulator {url}, latency {args.latency}s, N={n} updates")

        # Setup: N campaigns, created through the Graph API itself (batched, to keep setup short).
        with GraphHook() as hook:
            created = hook.batch(
                [
                    {
                        "method": "POST",
                        "relative_url": f"{ACCOUNT}/campaigns",
                        "body": {"name": f"bench {i}", "objective": "OUTCOME_TRAFFIC"},
                    }
                    for i in range(n)
                ],
                include_headers=False,
            )
        ids = [r["body"]["id"] for r in created]
        assert len(set(ids)) == n, "setup failed"

        def updates(tag: str) -> list[dict[str, Any]]:
            return [{"method": "POST", "relative_url": oid, "body": {"name": f"{tag} {oid}"}} for oid in ids]

        rows: list[tuple[str, float, int, int, float]] = []

        # 1. This provider.
        before = http_calls(url)
        start = time.perf_counter()
        op = GraphBatchOperator(
            task_id="bench", requests=updates("ours"), max_concurrency=args.concurrency, include_headers=False
        )
        results = op.execute({})
        ours = time.perf_counter() - start
        ok = sum(1 for r in results if r["code"] == 200)
        rows.append(
            (
                f"GraphBatchOperator (concurrency {args.concurrency})",
                ours,
                http_calls(url) - before,
                ok,
                server_ms(url, before),
            )
        )

        # 2. facebook-business SDK batches of 50.
        from facebook_business.api import FacebookAdsApi

        api = FacebookAdsApi.init(access_token=TOKEN, api_version="v25.0", crash_log=False)
        api._session.GRAPH = url  # the SDK reads the base URL from its session
        sdk_ok = 0

        def success(_response: Any) -> None:
            nonlocal sdk_ok
            sdk_ok += 1

        before = http_calls(url)
        start = time.perf_counter()
        for pos in range(0, n, 50):
            batch = api.new_batch()
            for oid in ids[pos : pos + 50]:
                batch.add("POST", oid, params={"name": f"sdk {oid}"}, success=success)
            while batch:
                batch = batch.execute()
        sdk = time.perf_counter() - start
        rows.append(
            (
                "facebook-business SDK batch (50/call)",
                sdk,
                http_calls(url) - before,
                sdk_ok,
                server_ms(url, before),
            )
        )

        # 3. One call per request (a sample, extrapolated).
        sample = min(args.single_sample, n)
        before = http_calls(url)
        start = time.perf_counter()
        single_ok = 0
        with GraphHook() as hook:
            for oid in ids[:sample]:
                if hook.post(oid, data={"name": f"single {oid}"}).get("success"):
                    single_ok += 1
        single_sample = time.perf_counter() - start
        single = single_sample * n / sample
        rows.append(
            (
                f"one call per request (sample {sample}, extrapolated)",
                single,
                http_calls(url) - before,
                single_ok,
                server_ms(url, before),
            )
        )

        names = {
            o["id"]: o["name"]
            for o in requests.get(f"{url}/__admin/objects?type=campaign", timeout=60).json()["objects"]
        }
        assert all(names[oid].startswith(("sdk ", "single ")) for oid in ids), "updates not applied"

        print(f"\n{'method':<52} {'wall s':>8} {'HTTP calls':>11} {'ok':>6} {'server ms/call':>15}")
        for label, secs, calls, good, ms in rows:
            print(f"{label:<52} {secs:>8.2f} {calls:>11} {good:>6} {ms:>15.1f}")
        target_calls = math.ceil(n / 50)
        print(
            f"\nspeed-up vs SDK: {sdk / ours:.2f}x (target >= 3x); vs one call per request: {single / ours:.1f}x"
        )
        busy = rows[0][2] * (rows[0][4] / 1000 - args.latency)
        print(
            f"emulator busy time serving the provider's calls: ~{busy:.2f}s of {ours:.2f}s wall "
            f"(server ms/call minus latency, times calls): when it nears the wall time, the emulator's "
            f"CPU is the bottleneck, not the client"
        )
        print(
            f"provider HTTP calls: {rows[0][2]} for N={n} (ceil(N/50)={target_calls}, "
            f"ratio {rows[0][2] / target_calls:.3f}, target <= 1.02)"
        )
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


if __name__ == "__main__":
    main()
