"""Measure what waiting costs a triggerer: Graph calls per poll round and CPU per 1,000 waiting sets.

Starts the Graph emulator (a subprocess, so its CPU is not counted), creates ``--sets`` request sets
whose processing is held (they stay pending), then runs ``AsyncRequestSetTrigger`` instances on one
asyncio loop in this process, as a triggerer does, in two layouts:

- ``per-set``: one trigger per set (one deferred sensor per submit, the usual DAG shape);
- ``grouped``: one trigger holding every set (one sensor waiting on a whole submit's sets).

After a warm-up of two poll intervals (connection lookups, client set-up, start jitter), it counts
the emulator's HTTP calls and this process' CPU time (user + system) over ``--rounds`` intervals and
prints calls per round and CPU seconds per round, scaled to 1,000 sets. Both layouts share the
loop's poller (``airflow_fb_async.waiting.poller``), so both expect ``ceil(sets/50)`` calls a round;
``benchmarks/trigger_loop.py`` also measures one poller per trigger. Airflow's own per-trigger
bookkeeping in a real triggerer (a DB sync every loop, not per poll) is not included.

Usage: ``.venv-e2e/bin/python scripts/e2e/trigger_load.py [--sets 1000] [--poll 5] [--rounds 6]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "trigger-load-token-0123456789abcdef"
ACCOUNT = "act_777"


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def start_emulator() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "airflow_fb_async.emulator", "--port", "0", "--token", TOKEN],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    url = next((w for w in line.split() if w.startswith("http://")), None)
    if url is None:
        proc.kill()
        raise SystemExit(f"the emulator did not announce its URL: {line!r}")
    return proc, url.rstrip("/")


def create_pending_sets(url: str, count: int) -> list[str]:
    """``count`` one-request sets, left pending (processing paused)."""
    requests.post(f"{url}/__admin/config", json={"async_pace": 0}, timeout=30).raise_for_status()
    session = requests.Session()
    session.headers["Authorization"] = f"OAuth {TOKEN}"
    batch = json.dumps([{"name": "c", "relative_url": f"{ACCOUNT}/campaigns", "body": "name=c&objective=X"}])
    ids = []
    for i in range(count):
        resp = session.post(
            f"{url}/v25.0/{ACCOUNT}/async_batch_requests", data={"name": f"s{i}", "adbatch": batch}
        )
        resp.raise_for_status()
        ids.append(str(resp.json()["id"]))
    return ids


def http_calls(url: str) -> int:
    return int(requests.get(f"{url}/__admin/counters", timeout=30).json()["http_calls"])


async def measure(url: str, groups: list[list[str]], poll: float, rounds: int) -> dict[str, float]:
    """Run one trigger per group; count calls and CPU over ``rounds`` intervals after a warm-up."""
    from airflow_fb_async.triggers.async_request_set import AsyncRequestSetTrigger

    triggers = [AsyncRequestSetTrigger(request_set_ids=ids, poll_interval=poll) for ids in groups]

    async def first_event(trigger: AsyncRequestSetTrigger) -> Any:
        return await trigger.run().__anext__()

    tasks = [asyncio.create_task(first_event(t)) for t in triggers]
    await asyncio.sleep(2 * poll)  # connection lookups, first reads, start jitter
    done = [t for t in tasks if t.done()]
    if done:
        raise SystemExit(f"{len(done)} trigger(s) ended early: {done[0].result()}")
    calls0, cpu0, t0 = await asyncio.to_thread(http_calls, url), cpu_seconds(), time.monotonic()
    await asyncio.sleep(rounds * poll)
    calls1, cpu1, t1 = await asyncio.to_thread(http_calls, url), cpu_seconds(), time.monotonic()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    n_rounds = (t1 - t0) / poll
    return {"calls_per_round": (calls1 - calls0) / n_rounds, "cpu_per_round": (cpu1 - cpu0) / n_rounds}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sets", type=int, default=1000)
    parser.add_argument("--poll", type=float, default=5.0, help="poll interval, seconds")
    parser.add_argument("--rounds", type=int, default=6, help="poll rounds measured")
    args = parser.parse_args()

    home = tempfile.mkdtemp(prefix="fb-trigger-load-")
    proc, url = start_emulator()
    os.environ.update(
        {
            "AIRFLOW_HOME": home,
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "True",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
            "AIRFLOW_CONN_FACEBOOK_GRAPH_DEFAULT": json.dumps(
                {
                    "conn_type": "facebook_graph",
                    "host": url,
                    "password": TOKEN,
                    "extra": {"api_version": "v25.0"},
                }
            ),
        }
    )
    results: dict[str, dict[str, Any]] = {}
    try:
        ids = create_pending_sets(url, args.sets)
        layouts = {"per-set": [[i] for i in ids], "grouped": [ids]}
        for name, groups in layouts.items():
            results[name] = asyncio.run(measure(url, groups, args.poll, args.rounds))
            results[name]["triggers"] = len(groups)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    scale = 1000 / args.sets
    print(f"{args.sets} pending sets, poll every {args.poll:g}s, {args.rounds} rounds measured")
    print(
        f"{'layout':<8} {'triggers':>8} {'calls/round':>12} {'expected':>9} {'CPU s/round':>12} {'per 1,000 sets':>15}"
    )
    for name, r in results.items():
        expected = math.ceil(args.sets / 50)  # either layout: the loop's one shared poller reads them all
        cpu = r["cpu_per_round"]
        print(
            f"{name:<8} {r['triggers']:>8} {r['calls_per_round']:>12.1f} {expected:>9} {cpu:>12.3f}"
            f" {cpu * scale:>9.3f} CPU s ({100 * cpu * scale / args.poll:.1f}% of a core)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
