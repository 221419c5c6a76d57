"""What every benchmark needs around its measurement: its own emulator, the admin API, peak RSS.

One copy, imported by each benchmark (``sys.path`` holds this folder when a benchmark runs as a
script), so the emulator start, its connection and the RSS reading are the same in all of them.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import requests

TOKEN = "bench-token-0123456789abcdef"
API = "v25.0"
ROOT = Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------------- emulator


def start_emulator(*options: str) -> tuple[subprocess.Popen[str], str]:
    """Start ``python -m airflow_fb_async.emulator --port 0 --token TOKEN *options``; return it and its URL.

    After the first line (which names the URL) its stdout is drained by a daemon thread, so the
    emulator never blocks on a full pipe.
    """
    proc = subprocess.Popen(
        [sys.executable, "-m", "airflow_fb_async.emulator", "--port", "0", "--token", TOKEN, *options],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()
    url = next((w for w in first.split() if w.startswith("http")), "").rstrip("/.,)")
    if not url:
        proc.kill()
        raise RuntimeError(f"emulator did not print its URL: {first!r}")
    threading.Thread(target=proc.stdout.read, daemon=True).start()
    return proc, url


def stop_emulator(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


def graph_conn(url: str, **extra: Any) -> str:
    """The JSON of an ``AIRFLOW_CONN_...`` variable for a ``facebook_graph`` connection to the emulator."""
    return json.dumps(
        {
            "conn_type": "facebook_graph",
            "host": url,
            "password": TOKEN,
            "extra": {"api_version": API, **extra},
        }
    )


def admin(url: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """GET (no body) or POST ``/__admin/<path>``; the decoded answer, ``None`` when empty."""
    if body is None:
        resp = requests.get(f"{url}/__admin/{path}", timeout=60)
    else:
        resp = requests.post(f"{url}/__admin/{path}", json=body, timeout=60)
    resp.raise_for_status()
    return resp.json() if resp.content else None


def create_sets(url: str, n_sets: int, per_set: int) -> list[str]:
    """``n_sets`` async request sets of ``per_set`` campaign creates each, one POST per set."""
    session = requests.Session()
    ids = []
    for s in range(n_sets):
        account = f"act_{1000 + s}"  # one ad account per set keeps usage budgets apart
        adbatch = [
            {
                "name": f"c{s}_{i}",
                "relative_url": f"{account}/campaigns",
                "body": f"name=b{s}_{i}&objective=OUTCOME_TRAFFIC",
            }
            for i in range(per_set)
        ]
        resp = session.post(
            f"{url}/{API}/{account}/async_batch_requests",
            data={"name": f"bench {s}", "adbatch": json.dumps(adbatch), "access_token": TOKEN},
            timeout=120,
        )
        resp.raise_for_status()
        ids.append(str(resp.json()["id"]))
    return ids


# ---------------------------------------------------------------------- operators outside a DAG run


class StubTI:
    """The task-instance attributes an operator reads when a benchmark calls ``execute`` outside a DAG
    run; XCom pushes are dropped (the benchmark measures the returned value itself)."""

    dag_id, run_id, map_index = "bench", "bench__1", -1

    def __init__(self, task_id: str) -> None:
        self.task_id = task_id

    def xcom_push(self, key: str, value: Any) -> None:
        pass


# ---------------------------------------------------------------------- memory


def status_kb(key: str) -> int:
    """A ``kB`` figure of ``/proc/self/status`` (``VmRSS``, ``VmHWM``)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{key} not in /proc/self/status")


def reset_peak() -> bool:
    """Reset the high-water mark ``VmHWM`` to the current RSS (Linux); False when not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False
