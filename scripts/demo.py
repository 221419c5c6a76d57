"""`make demo`: run the main example DAG end to end against a local Graph emulator and say what it did.

Steps: start the emulator on a free loopback port, point ``facebook_graph_default`` at it through
``AIRFLOW_CONN_FACEBOOK_GRAPH_DEFAULT``, migrate a throwaway SQLite metadata DB, run
``airflow dags test example_fb_async_ad_creation`` (deferred tasks' triggers run inline), read the
emulator's own counters and the request sets it holds, print a summary, stop the emulator.
``--all`` runs every example DAG (the file pipeline writes its files under .demo/file_pipeline, the
insights pipeline under .demo/insights_pipeline).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
DEMO_HOME = ROOT / ".demo"
TOKEN = "emulator-token"
ACCOUNT = "act_1234567890"
MAIN_DAG = "example_fb_async_ad_creation"
FILE_DAG = "example_fb_file_pipeline"
INSIGHTS_DAG = "example_fb_insights_pipeline"
ALL_DAGS = [MAIN_DAG, "example_fb_batch_creatives", "example_fb_manage_sets", FILE_DAG, INSIGHTS_DAG]
#: Where the file pipeline writes its JSON Lines files (10,000 ad specs, ids, pauses, results).
FILE_WORK_DIR = DEMO_HOME / "file_pipeline"
#: Where the insights pipeline writes its report rows, pause requests and their results.
INSIGHTS_WORK_DIR = DEMO_HOME / "insights_pipeline"
#: The run conf of the DAGs that write files.
WORK_DIRS = {FILE_DAG: FILE_WORK_DIR, INSIGHTS_DAG: INSIGHTS_WORK_DIR}


def start_emulator() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "airflow_fb_async.emulator", "--port", "0", "--token", TOKEN],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    url = next((word for word in line.split() if word.startswith("http://")), None)
    if url is None:
        proc.kill()
        raise SystemExit(f"emulator did not announce its URL: {line!r}")
    return proc, url.rstrip("/")


def airflow_env(url: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "AIRFLOW_HOME": str(DEMO_HOME / "airflow_home"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags_examples"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
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
    return env


def airflow(env: dict[str, str], *args: str, log: Path) -> int:
    airflow_bin = Path(sys.executable).parent / "airflow"
    with log.open("a") as out:
        out.write(f"\n$ airflow {' '.join(args)}\n")
        out.flush()
        return subprocess.call(
            [str(airflow_bin), *args], env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT
        )


def graph_summary(url: str) -> dict[str, Any]:
    """What the emulator holds: sets on the demo account and their counts, HTTP calls, objects."""
    admin = requests.get(f"{url}/__admin/counters", timeout=10).json()
    fields = "id,name,is_completed,total_count,success_count,error_count,canceled_count"
    resp = requests.get(
        f"{url}/v25.0/{ACCOUNT}/asyncadrequestsets",
        params={"fields": fields, "limit": 500},
        headers={"Authorization": f"OAuth {TOKEN}"},
        timeout=10,
    )
    sets = resp.json().get("data", [])
    return {"admin": admin, "sets": sets}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--all", action="store_true", help="run every example DAG, not just the main one")
    args = parser.parse_args()
    dags = ALL_DAGS if args.all else [MAIN_DAG]

    shutil.rmtree(DEMO_HOME, ignore_errors=True)
    DEMO_HOME.mkdir(parents=True)
    log = DEMO_HOME / "airflow.log"
    started = time.monotonic()
    proc, url = start_emulator()
    print(f"demo: Graph emulator at {url}")
    results: list[tuple[str, int, float]] = []
    try:
        env = airflow_env(url)
        print("demo: migrating a throwaway SQLite metadata DB ...")
        if airflow(env, "db", "migrate", log=log) != 0:
            print(f"demo: `airflow db migrate` failed, see {log}")
            return 1
        for dag_id in dags:
            t0 = time.monotonic()
            print(f"demo: airflow dags test {dag_id} ...")
            conf = ["-c", json.dumps({"work_dir": str(WORK_DIRS[dag_id])})] if dag_id in WORK_DIRS else []
            code = airflow(env, "dags", "test", *conf, dag_id, log=log)
            results.append((dag_id, code, time.monotonic() - t0))
        summary = graph_summary(url)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()

    admin, sets = summary["admin"], summary["sets"]
    print("\n=== airflow_fb_async demo summary ===")
    for dag_id, code, secs in results:
        print(f"  {dag_id:<32} {'success' if code == 0 else 'FAILED'} in {secs:.1f}s")
    print(f"  request sets on {ACCOUNT}: {len(sets)}")
    for s in sets:
        print(
            f"    {s['id']} {s['name']!r}: total {s.get('total_count')}, success {s.get('success_count')}, "
            f"error {s.get('error_count')}, canceled {s.get('canceled_count')}, completed {s.get('is_completed')}"
        )
    print(f"  requests: {sum(int(s.get('total_count') or 0) for s in sets)}")
    print(f"  successes: {sum(int(s.get('success_count') or 0) for s in sets)}")
    print(f"  errors: {sum(int(s.get('error_count') or 0) for s in sets)}")
    print(f"  objects created: {admin.get('objects_created_by_type', admin.get('objects_created'))}")
    print(f"  HTTP calls made to Graph: {admin.get('http_calls')} {admin.get('calls_by_kind')}")
    for label, work_dir in (("file pipeline", FILE_WORK_DIR), ("insights pipeline", INSIGHTS_WORK_DIR)):
        for path in sorted(work_dir.glob("*/*.jsonl")):
            with path.open("rb") as fh:
                lines = sum(1 for _ in fh)
            print(f"  {label}: {path.relative_to(DEMO_HOME)}: {lines} lines")
    print(f"  elapsed: {time.monotonic() - started:.1f}s (Airflow log: {log})")
    failed = [dag_id for dag_id, code, _ in results if code != 0]
    if failed:
        print(f"demo: FAILED: {failed}; last lines of {log}:")
        print("\n".join(log.read_text().splitlines()[-40:]))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
