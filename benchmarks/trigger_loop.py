"""Event-loop lag benchmark: K AsyncRequestSetTriggers on one asyncio loop, as in a triggerer.

Starts its own emulator in a separate process (in-process, its threads would compete with the loop
for the GIL, which a real triggerer never sees from Graph), creates ``K x sets_per_trigger`` request
sets over HTTP, then:

1. **idle baseline**: a probe task sleeps 10 ms in a loop for ``--idle`` seconds on an otherwise idle
   loop and records how late each wake-up was (what the machine itself costs: other processes,
   the OS scheduler);
2. **loaded**: the same probe runs while K triggers poll their sets against the emulator with
   ``--latency`` per call, until every trigger has fired.

Prints the max and p99 lateness of both runs and their difference. A provider that blocks the loop
(sync HTTP, sync connection reads, loading the CA bundle on the loop) shows up as a loaded max far
above the idle one. Timing claims live here, not in the test suite: the tests assert the
deterministic part (no blocking call on the loop; see
``tests/triggers/test_async_request_set.py::test_triggers_never_block_the_loop``).

Usage: ``python benchmarks/trigger_loop.py [--triggers 100] [--sets-per-trigger 5] [--latency 0.2]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
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
PROBE_SLEEP = 0.01


def start_emulator() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "airflow_fb_async.emulator", "--port", "0", "--token", TOKEN],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = re.search(r"https?://[^\s)]+", line)
    if not match:
        proc.terminate()
        raise SystemExit(f"emulator did not print its URL: {line!r}")
    threading.Thread(target=proc.stdout.read, daemon=True).start()  # never block on a full pipe
    return proc, match.group(0).rstrip("/")


def create_sets(url: str, n_sets: int, per_set: int) -> list[str]:
    """Request sets of ``per_set`` campaign creates each, over plain HTTP."""
    ids = []
    with requests.Session() as session:
        for s in range(n_sets):
            batch = [
                {
                    "name": f"c{s}_{i}",
                    "relative_url": f"{ACCOUNT}/campaigns",
                    "body": f"name=c{s}_{i}&objective=OUTCOME_TRAFFIC",
                }
                for i in range(per_set)
            ]
            resp = session.post(
                f"{url}/v25.0/{ACCOUNT}/async_batch_requests",
                data={"name": f"bench set {s}", "adbatch": json.dumps(batch)},
                headers={"Authorization": f"OAuth {TOKEN}"},
                timeout=60,
            )
            resp.raise_for_status()
            ids.append(str(resp.json()["id"]))
    return ids


def admin(url: str, path: str, body: dict[str, Any] | None = None) -> Any:
    if body is None:
        return requests.get(f"{url}/__admin/{path}", timeout=30).json()
    return requests.post(f"{url}/__admin/{path}", json=body, timeout=30).json()


class Probe:
    """Sleeps PROBE_SLEEP in a loop and records how late each wake-up is (seconds)."""

    def __init__(self) -> None:
        self.lateness: list[float] = []
        self._stop = asyncio.Event()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._stop.is_set():
            before = loop.time()
            await asyncio.sleep(PROBE_SLEEP)
            self.lateness.append(max(0.0, loop.time() - before - PROBE_SLEEP))

    def stop(self) -> None:
        self._stop.set()


def stats(values: list[float]) -> tuple[float, float, int]:
    """(max ms, p99 ms, samples)."""
    if not values:
        return 0.0, 0.0, 0
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
    return ordered[-1] * 1000, p99 * 1000, len(ordered)


async def first_event(trigger: Any) -> dict[str, Any]:
    gen = trigger.run()
    try:
        return (await gen.__anext__()).payload
    finally:
        await gen.aclose()


async def run(args: argparse.Namespace, url: str) -> int:
    from airflow_fb_async.triggers.async_request_set import AsyncRequestSetTrigger

    # Warm up (lazy imports, the CA bundle, the first connection read), as a running triggerer is.
    (warm_id,) = await asyncio.to_thread(create_sets, url, 1, 1)
    warm = await first_event(AsyncRequestSetTrigger(request_set_ids=[warm_id], poll_interval=0.05))
    assert warm["status"] == "success", warm
    # The measured sets wait (processing paused) until the triggers start.
    admin(url, "config", {"async_pace": 0})
    n_sets = args.triggers * args.sets_per_trigger
    ids = await asyncio.to_thread(create_sets, url, n_sets, args.requests_per_set)

    idle = Probe()
    task = asyncio.create_task(idle.run())
    await asyncio.sleep(args.idle)
    idle.stop()
    await task

    # The sets start processing now, so that every trigger polls a few rounds.
    admin(url, "config", {"latency": args.latency, "async_pace": args.pace})
    per = args.sets_per_trigger
    triggers = [
        AsyncRequestSetTrigger(request_set_ids=ids[i : i + per], poll_interval=args.poll_interval)
        for i in range(0, len(ids), per)
    ]
    loaded = Probe()
    task = asyncio.create_task(loaded.run())
    started = time.perf_counter()
    try:
        events = await asyncio.gather(*(first_event(t) for t in triggers))
    finally:
        loaded.stop()
        await task
    wall = time.perf_counter() - started
    ok = sum(1 for e in events if e["status"] == "success")

    idle_max, idle_p99, idle_n = stats(idle.lateness)
    load_max, load_p99, load_n = stats(loaded.lateness)
    print(f"{len(triggers)} triggers x {per} sets, emulator latency {args.latency * 1000:.0f} ms per call")
    print(f"  events: {ok}/{len(triggers)} success in {wall:.1f} s")
    print(f"  idle baseline : max loop lag {idle_max:7.1f} ms, p99 {idle_p99:6.1f} ms ({idle_n} samples)")
    print(f"  with triggers : max loop lag {load_max:7.1f} ms, p99 {load_p99:6.1f} ms ({load_n} samples)")
    print(f"  difference    : max {load_max - idle_max:+7.1f} ms, p99 {load_p99 - idle_p99:+6.1f} ms")
    return 0 if ok == len(triggers) else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--triggers", type=int, default=100, help="number of triggers (K)")
    parser.add_argument("--sets-per-trigger", type=int, default=5)
    parser.add_argument("--requests-per-set", type=int, default=2)
    parser.add_argument("--latency", type=float, default=0.2, help="emulator latency per call (s)")
    parser.add_argument("--poll-interval", type=float, default=1.0)
    parser.add_argument("--pace", type=float, default=2.0, help="emulator requests per second per set")
    parser.add_argument("--idle", type=float, default=3.0, help="seconds of idle baseline")
    args = parser.parse_args()

    os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="fb_async_bench_"))
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")
    proc, url = start_emulator()
    try:
        os.environ["AIRFLOW_CONN_FACEBOOK_GRAPH_DEFAULT"] = json.dumps(
            {"conn_type": "facebook_graph", "host": url, "password": TOKEN, "extra": {"api_version": "v25.0"}}
        )
        return asyncio.run(run(args, url))
    finally:
        proc.terminate()
        proc.wait(timeout=10)


if __name__ == "__main__":
    sys.exit(main())
