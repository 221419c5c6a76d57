"""Load benchmark of the Graph emulator: N concurrent clients x M standard batch calls.

Starts ``python -m airflow_fb_async.emulator --port 0`` in a subprocess, creates a few campaigns,
then runs ``--clients`` threads (each with its own ``requests.Session``, i.e. its own keep-alive
connection), each making ``--calls`` batch calls of ``--entries`` GET entries. Counts errors (HTTP
status != 200 or connection errors) and lost entries (an entry that is null, not 200, or not the
object asked for), and prints calls/s, p50/p99 latency and the emulator's max_concurrent_connections.

    python benchmarks/emulator_load.py [--clients 200] [--calls 50] [--entries 10]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "bench-token"


def start_emulator() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "airflow_fb_async.emulator", "--port", "0", "--token", TOKEN],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "http://" not in line:
        proc.kill()
        raise SystemExit(f"emulator did not start: {line!r}")
    return proc, "http://" + line.split("http://", 1)[1].split()[0]


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--calls", type=int, default=50, help="batch calls per client")
    parser.add_argument("--entries", type=int, default=10, help="GET entries per batch (<= 50)")
    parser.add_argument("--url", default=None, help="use a running emulator instead of starting one")
    args = parser.parse_args(argv)

    proc = None
    url = args.url
    if url is None:
        proc, url = start_emulator()
    try:
        admin = requests.Session()
        admin.post(f"{url}/__admin/reset", json={}, timeout=30).raise_for_status()
        # Measure throughput, not the throttling model: 200 x 50 x 10 entries on one ad account would
        # exceed the default usage_budget (100000 calls per 60 s) and be throttled (correctly).
        admin.post(f"{url}/__admin/config", json={"usage_budget": 10**9}, timeout=30).raise_for_status()
        camps = []
        for i in range(args.entries):
            resp = admin.post(
                f"{url}/v25.0/act_1/campaigns",
                timeout=30,
                headers={"Authorization": f"OAuth {TOKEN}"},
                data={"name": f"bench {i}", "objective": "OUTCOME_TRAFFIC"},
            )
            resp.raise_for_status()
            camps.append(resp.json()["id"])
        batch = json.dumps([{"method": "GET", "relative_url": f"v25.0/{c}?fields=id,name"} for c in camps])

        latencies: list[float] = []
        errors = 0
        lost = 0
        lock = threading.Lock()
        barrier = threading.Barrier(args.clients)

        def client() -> None:
            nonlocal errors, lost
            session = requests.Session()
            my_lat: list[float] = []
            my_err = my_lost = 0
            try:
                barrier.wait(timeout=120)
            except threading.BrokenBarrierError:
                pass
            for _ in range(args.calls):
                started = time.perf_counter()
                try:
                    resp = session.post(f"{url}/", data={"access_token": TOKEN, "batch": batch}, timeout=120)
                except requests.RequestException:
                    my_err += 1
                    my_lost += len(camps)
                    continue
                my_lat.append(time.perf_counter() - started)
                if resp.status_code != 200:
                    my_err += 1
                    my_lost += len(camps)
                    continue
                out = resp.json()
                for camp, entry in zip(camps, out, strict=False):
                    if not entry or entry.get("code") != 200 or json.loads(entry["body"]).get("id") != camp:
                        my_lost += 1
                my_lost += max(0, len(camps) - len(out))
            session.close()
            with lock:
                latencies.extend(my_lat)
                errors += my_err
                lost += my_lost

        threads = [threading.Thread(target=client, daemon=True) for _ in range(args.clients)]
        started = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - started
        counters = admin.get(f"{url}/__admin/counters", timeout=30).json()

        total = args.clients * args.calls
        print(f"emulator load: {args.clients} clients x {args.calls} batch calls x {len(camps)} GET entries")
        print(
            f"  calls:      {total} in {elapsed:.2f} s -> {total / elapsed:.0f} calls/s, "
            f"{total * len(camps) / elapsed:.0f} entries/s"
        )
        if latencies:
            print(
                f"  latency:    p50 {percentile(latencies, 50) * 1000:.1f} ms, "
                f"p99 {percentile(latencies, 99) * 1000:.1f} ms, "
                f"mean {statistics.fmean(latencies) * 1000:.1f} ms"
            )
        print(f"  errors:     {errors}")
        print(f"  lost:       {lost} entries")
        print(
            f"  emulator:   http_calls {counters['http_calls']}, batch_entries {counters['batch_entries']}, "
            f"max_concurrent_connections {counters['max_concurrent_connections']}"
        )
        return 0 if errors == 0 and lost == 0 else 1
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


if __name__ == "__main__":
    sys.exit(main())
