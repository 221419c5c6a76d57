"""Triggers on one asyncio loop, as in a triggerer: calls per round, loop lag, CPU and RSS.

Starts its own emulator in a separate process (in-process, its threads would compete with the loop
for the GIL, which a real triggerer never sees from Graph). For each K in ``--ks`` (default 1, 200
and 1,000 triggers with ``--sets-per-trigger`` sets each) it runs two modes side by side:

- **coalesced**: every trigger on the default connection, so they share the loop's poller
  (:mod:`airflow_fb_async.waiting.poller`): ``ceil(K x sets / 50)`` multi-id calls a round;
- **per trigger**: each trigger on a connection of its own (same emulator), so each has its own
  poller, hook and HTTP client: one poll per trigger, as before the shared poller.

Each run: the sets are created paused; a probe task sleeps 10 ms in a loop and records how late
each wake-up is (an idle baseline first, then during the run); the triggers start, poll
``--rounds`` rounds with nothing changing, then every set completes at once (all triggers finish
together). Printed per run: HTTP calls per steady round, max and p99 loop lag (start, steady and
finish together), the CPU of the longest single loop callback without garbage collection ("step
CPU": what code held the loop; a lag far above it is a collection or the OS taking the core), the
full (generation 2) garbage collections during the run and the longest, process CPU per round, RSS
growth. Timing claims live here, not in the test suite:
the tests assert the deterministic part (calls per round, no blocking call on the loop; see
``tests/triggers/``).

Usage: ``python benchmarks/trigger_loop.py [--ks 1,200,1000] [--sets-per-trigger 1] [--latency 0.05]``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sys
import tempfile
import time
from typing import Any

from _common import admin, create_sets, graph_conn, start_emulator, stop_emulator

PROBE_SLEEP = 0.01


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


def rss_mb() -> float:
    """Resident set size of this process now (Linux /proc), in MB."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class RssProbe:
    """Samples the RSS every 100 ms; ``peak`` is the highest seen."""

    def __init__(self) -> None:
        self.peak = rss_mb()
        self._stop = asyncio.Event()

    async def run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_mb())
            await asyncio.sleep(0.1)

    def stop(self) -> None:
        self._stop.set()


gc_pauses: list[float] = []
_gc_started: list[float] = []
#: CPU seconds spent in garbage collections (every generation) since the process started.
gc_cpu: list[float] = [0.0]


def _gc_timer(phase: str, info: dict[str, Any]) -> None:
    """gc.callbacks hook: the CPU of every collection, and the duration of every full (generation 2)
    one, in seconds."""
    if phase == "start":
        _gc_started[:] = [time.perf_counter(), time.thread_time()]
    elif _gc_started:
        gc_cpu[0] += time.thread_time() - _gc_started[1]
        if info.get("generation") == 2:
            gc_pauses.append(time.perf_counter() - _gc_started[0])


#: CPU seconds of the longest single loop callback (a task step), garbage collections left out,
#: since the last reset.
step_cpu: list[float] = [0.0]
_run_handle = asyncio.events.Handle._run


def _timed_run(handle: asyncio.events.Handle) -> None:
    """Handle._run, timing the CPU each loop callback takes without the collections that ran in it:
    the longest is what code held the loop; a lag far above it is a GC or the OS taking the core."""
    started, gc_before = time.thread_time(), gc_cpu[0]
    _run_handle(handle)
    step_cpu[0] = max(step_cpu[0], time.thread_time() - started - (gc_cpu[0] - gc_before))


def get_multi(url: str) -> int:
    return int(admin(url, "counters")["calls_by_kind"].get("get_multi", 0))


async def first_event(trigger: Any) -> dict[str, Any]:
    gen = trigger.run()
    try:
        return (await gen.__anext__()).payload
    finally:
        await gen.aclose()


def conn_env(url: str, conn_id: str) -> None:
    os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"] = graph_conn(url)


async def idle_baseline(seconds: float) -> list[float]:
    probe = Probe()
    task = asyncio.create_task(probe.run())
    await asyncio.sleep(seconds)
    probe.stop()
    await task
    return probe.lateness


async def one_run(args: argparse.Namespace, url: str, k: int, coalesced: bool) -> dict[str, Any]:
    """K triggers, coalesced or one poller each: figures of one run."""
    from airflow_fb_async.triggers.async_request_set import AsyncRequestSetTrigger
    from airflow_fb_async.waiting.poller import pollers_of

    await asyncio.to_thread(admin, url, "reset", {})
    admin(url, "config", {"async_pace": 0, "latency": args.latency})
    per = args.sets_per_trigger
    ids = await asyncio.to_thread(create_sets, url, k * per, args.requests_per_set)
    triggers = [
        AsyncRequestSetTrigger(
            request_set_ids=ids[i * per : (i + 1) * per],
            graph_conn_id="facebook_graph_default" if coalesced else f"fb_bench_{i}",
            poll_interval=args.poll_interval,
        )
        for i in range(k)
    ]
    loop = asyncio.get_running_loop()
    probe, rss = Probe(), RssProbe()
    rss_before = rss_mb()
    tasks = [asyncio.create_task(probe.run()), asyncio.create_task(rss.run())]
    cpu0, wall0 = time.process_time(), time.perf_counter()
    gc_pauses.clear()
    step_cpu[0] = 0.0
    waits = []
    for t in triggers:  # one at a time with a yield between, as Airflow's create_triggers adds them
        waits.append(asyncio.ensure_future(first_event(t)))
        await asyncio.sleep(0)

    def rounds_now() -> float:
        pollers = list(pollers_of(loop).values())
        return sum(p.rounds for p in pollers) / max(len(pollers), 1)

    # Start: until every poller has run its first round.
    while rounds_now() < 1 or len(pollers_of(loop)) < (1 if coalesced else k):
        await asyncio.sleep(0.05)
    start_lag = max(probe.lateness, default=0.0)
    # Steady: --rounds rounds with nothing changing.
    calls0, rounds0, cpu1 = await asyncio.to_thread(get_multi, url), rounds_now(), time.process_time()
    mark = len(probe.lateness)
    while rounds_now() - rounds0 < args.rounds:
        await asyncio.sleep(0.05)
    calls1, rounds1, cpu2 = await asyncio.to_thread(get_multi, url), rounds_now(), time.process_time()
    steady = probe.lateness[mark:]
    # Finish: every set completes at once; every trigger fires.
    mark = len(probe.lateness)
    await asyncio.to_thread(admin, url, "config", {"async_pace": 100000})
    events = await asyncio.gather(*waits)
    finish = probe.lateness[mark:]
    wall = time.perf_counter() - wall0
    cpu_total = time.process_time() - cpu0
    probe.stop()
    rss.stop()
    await asyncio.gather(*tasks)
    ok = sum(1 for e in events if e["status"] == "success")
    n_rounds = max(rounds1 - rounds0, 1e-9)
    return {
        "k": k,
        "mode": "coalesced" if coalesced else "per trigger",
        "ok": ok,
        "calls_per_round": (calls1 - calls0) / n_rounds,
        "cpu_ms_per_round": (cpu2 - cpu1) * 1000 / n_rounds,
        "start_lag": start_lag * 1000,
        "steady_lag": stats(steady)[0],
        "finish_lag": stats(finish)[0],
        "p99": stats(probe.lateness)[1],
        "rss": rss.peak - rss_before,
        "gc": max(gc_pauses, default=0.0) * 1000,
        "gcs": len(gc_pauses),
        "step": step_cpu[0] * 1000,
        "wall": wall,
        "cpu": cpu_total,
    }


async def run(args: argparse.Namespace, url: str) -> int:
    from airflow_fb_async.triggers.async_request_set import AsyncRequestSetTrigger

    gc.callbacks.append(_gc_timer)
    asyncio.events.Handle._run = _timed_run  # type: ignore[method-assign]
    # Warm up once (lazy imports, the CA bundle, the first connection read), as a running triggerer is.
    (warm_id,) = await asyncio.to_thread(create_sets, url, 1, 1)
    warm = await first_event(AsyncRequestSetTrigger(request_set_ids=[warm_id], poll_interval=0.05))
    assert warm["status"] == "success", warm
    idle_max, idle_p99, idle_n = stats(await idle_baseline(args.idle))
    print(
        f"triggers x {args.sets_per_trigger} set(s), poll every {args.poll_interval:g} s, "
        f"emulator latency {args.latency * 1000:.0f} ms per call, {args.rounds} steady rounds"
    )
    print(f"idle loop baseline: max lag {idle_max:.1f} ms, p99 {idle_p99:.1f} ms ({idle_n} samples)")
    header = (
        f"{'K':>5} {'mode':<12} {'events':>9} {'calls/round':>11} {'CPU ms/round':>12} "
        f"{'max lag ms: start':>17} {'steady':>7} {'finish':>7} {'p99':>6} {'step CPU':>8} "
        f"{'full GCs':>8} {'max GC ms':>9} {'RSS +MB':>8} {'wall s':>7}"
    )
    print(header)
    failed = 0
    for k in args.ks:
        for coalesced in [m.strip() == "coalesced" for m in args.modes.split(",") if m.strip()]:
            r = await one_run(args, url, k, coalesced)
            failed += r["ok"] != k
            print(
                f"{r['k']:>5} {r['mode']:<12} {r['ok']:>4}/{k:<4} {r['calls_per_round']:>11.1f} "
                f"{r['cpu_ms_per_round']:>12.1f} {r['start_lag']:>17.1f} {r['steady_lag']:>7.1f} "
                f"{r['finish_lag']:>7.1f} {r['p99']:>6.1f} {r['step']:>8.1f} {r['gcs']:>8} {r['gc']:>9.1f} "
                f"{r['rss']:>8.1f} {r['wall']:>7.1f}",
                flush=True,
            )
    return 1 if failed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ks", default="1,200,1000", help="numbers of triggers, comma-separated")
    parser.add_argument("--sets-per-trigger", type=int, default=1)
    parser.add_argument("--requests-per-set", type=int, default=1)
    parser.add_argument("--latency", type=float, default=0.05, help="emulator latency per call (s)")
    parser.add_argument("--poll-interval", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=5, help="steady rounds measured per run")
    parser.add_argument("--idle", type=float, default=3.0, help="seconds of idle baseline")
    parser.add_argument("--modes", default="coalesced,per-trigger", help="which modes to run")
    args = parser.parse_args()
    args.ks = [int(k) for k in str(args.ks).split(",") if k.strip()]

    os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="fb_async_bench_"))
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")
    proc, url = start_emulator()
    try:
        conn_env(url, "facebook_graph_default")
        for i in range(max(args.ks)):  # one connection per trigger for the "per trigger" mode
            conn_env(url, f"fb_bench_{i}")
        return asyncio.run(run(args, url))
    finally:
        stop_emulator(proc)


if __name__ == "__main__":
    sys.exit(main())
