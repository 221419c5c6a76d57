"""`make e2e`: the example DAGs on a real deployment on this machine, with a triggerer and a worker killed.

Starts PostgreSQL 15 and Redis 7 on 127.0.0.1, the Graph emulator, ``airflow db migrate``, then the
api-server, a scheduler, a dag-processor, two Celery workers and two triggerers; adds the Graph
connection through the REST API (Fernet-encrypted in the metadata DB) and triggers the example DAGs
through the REST API without a logical date. Phase 1 SIGKILLs the triggerer holding the most of the
main pipeline's deferred sensors and measures how long the other takes to pick them up; phase 2
SIGKILLs the Celery worker running a submit after its set-create reached Graph. Then it checks every
run succeeded, Graph holds exactly what the runs intend (no duplicate set or object), and the token
is in no log line, no metadata DB row and not in Redis. Whatever happens, everything started is
stopped by pid in a ``finally`` and the run fails if any process is left. Exit code 0 means all held.
"""

from __future__ import annotations

import argparse
import json
import secrets
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # `tests.emu_admin` for the emulator

from airflow_api import AirflowApi, MetaDB
from checks import GraphVerdict, Scan, check_graph, scan_blob, scan_logs, scan_sql_dump, table
from procs import Supervisor, wait_until
from scenario import Scenario
from services import (
    E2E_DAGS,
    Postgres,
    airflow_cli,
    airflow_deployment,
    free_port,
    redis_dump,
    start_component,
    start_emulator,
    start_postgres,
    start_redis,
)

from tests.emu_admin import EmulatorAdmin

#: The issue's bound for a whole run on 2 cores (the install is not counted).
WALL_BUDGET = 600
WORKERS = ["worker-1", "worker-2"]
TRIGGERERS = ["triggerer-1", "triggerer-2"]
STOP_ORDER = [
    "scheduler",
    "dag-processor",
    *TRIGGERERS,
    *WORKERS,
    "api-server",
    "emulator",
    "redis",
    "postgres",
]


class Outcome:
    """Everything the summary reports, filled in as far as the run got."""

    def __init__(self) -> None:
        self.scenario: Scenario | None = None
        self.graph: GraphVerdict | None = None
        self.http_calls = 0
        self.scans: list[Scan] = []
        self.leftovers: list[str] = []
        self.error: str = ""


def deploy_and_run(sup: Supervisor, base: Path, token: str, out: Outcome) -> tuple[Postgres, int]:
    logs = sup.log_dir
    pg = start_postgres(sup, base)
    redis_port = start_redis(sup, base)
    _, graph_url = start_emulator(sup, token)
    admin_password = secrets.token_urlsafe(16)
    dep = airflow_deployment(base, pg, redis_port, admin_password)
    print(
        f"e2e: PostgreSQL :{pg.port}, Redis :{redis_port}, Graph emulator {graph_url}, api-server {dep.api_url}"
    )
    print("e2e: airflow db migrate ...")
    airflow_cli(dep, logs / "airflow-cli.log", "db", "migrate", timeout=600)

    start_component(sup, dep, "api-server", "api-server")
    start_component(sup, dep, "scheduler", "scheduler")
    start_component(sup, dep, "dag-processor", "dag-processor")
    for i, name in enumerate(WORKERS, 1):
        start_component(
            sup,
            dep,
            name,
            *(
                "celery",
                "worker",
                "--celery-hostname",
                f"worker{i}@e2e",
                "--without-mingle",
                "--without-gossip",
            ),
            AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=str(free_port()),
        )
    db = MetaDB("127.0.0.1", pg.port, pg.password)
    triggerers: dict[int, str] = {}
    for name in TRIGGERERS:  # one after the other, so each triggerer job id maps to its process
        known = set(db.triggerer_jobs())
        start_component(
            sup, dep, name, "triggerer", AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT=str(free_port())
        )

        def new_job(known: set[int] = known) -> int | None:
            return next((job for job in db.triggerer_jobs() if job not in known), None)

        job = wait_until(f"{name} to register its job", new_job, timeout=180)
        assert isinstance(job, int)
        triggerers[job] = name
    print(f"e2e: triggerer jobs {triggerers}")

    api = AirflowApi(dep.api_url, "e2e", admin_password)
    wait_until("the api-server to answer", api.healthy, timeout=180, interval=1)
    api.login()
    extra = json.dumps({"api_version": "v25.0"})
    api.add_connection("facebook_graph_default", "facebook_graph", graph_url, token, extra)
    dags = list(E2E_DAGS)
    wait_until("the dag-processor to parse the example DAGs", lambda: all(map(api.dag_known, dags)), 300, 2)

    emu = EmulatorAdmin(graph_url)
    scenario = out.scenario = Scenario(sup, api, db, emu, triggerers, dep.home / "logs")
    print("e2e: phase 1: triggerer killed while holding the main pipeline's deferred sensors")
    scenario.phase_triggerer_kill()
    print("e2e: phase 2: Celery worker killed after the set-create reached Graph")
    scenario.phase_worker_kill(WORKERS)
    for run in scenario.runs.values():
        failed = [
            f"{t['task_id']}[{t['map_index']}]={t['state']}"
            for t in api.task_instances(run.dag_id, run.run_id)
        ]
        run.notes.extend(f for f in failed if not f.endswith("=success"))
    counters = emu.counters()
    out.graph = check_graph(emu.objects(), counters, scenario.runs.values())
    out.http_calls = int(counters["http_calls"])
    db.close()
    pg.dump(base / "metadata.sql")
    redis_dump(redis_port, base)
    return pg, redis_port


def summary(out: Outcome, wall: float) -> tuple[str, bool]:
    """The summary table and whether every check held."""
    ok = not out.error and not out.leftovers
    parts: list[str] = []
    sc = out.scenario
    if sc is not None:
        rows = [
            [r.label, r.dag_id, r.run_id or "-", r.account, r.state, f"{r.seconds:.0f}s", "; ".join(r.notes)]
            for r in sc.runs.values()
        ]
        ok &= all(r.state == "success" for r in sc.runs.values())
        parts.append(table(["run", "dag", "run id", "account", "state", "time", "notes"], rows))
        parts.append(table(["check", "result"], [list(row) for row in sc.report]))
        ok &= int(sc.facts.get("submit_tries", 0)) >= 2
    if out.graph is not None:
        g = out.graph
        parts.append(table(["account", "Graph object", "intended", "found"], [list(row) for row in g.rows]))
        parts.append(
            f"duplicates/excess: {g.excess}, missing: {g.missing}, Graph HTTP calls: {out.http_calls}"
        )
        ok &= g.ok
    else:
        ok = False
    if out.scans:
        parts.append(
            table(
                ["token searched in", "searched", "token hits", "control hits"],
                [[s.what, s.units, len(s.hits), s.control] for s in out.scans],
            )
        )
        for s in out.scans:
            ok &= not s.hits and s.control > 0
            parts.extend(f"  TOKEN FOUND: {hit}" for hit in s.hits[:20])
    else:
        ok = False
    parts.append(f"left running: {len(out.leftovers)}; wall time: {wall:.0f}s (budget {WALL_BUDGET}s)")
    ok &= wall < WALL_BUDGET
    parts.extend(f"  LEFT RUNNING: {p}" for p in out.leftovers)
    if out.error:
        parts.append(f"ERROR: {out.error}")
    return "\n\n".join(parts), ok


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the PostgreSQL data dir (logs are always kept)"
    )
    args = parser.parse_args()
    started = time.monotonic()
    base = Path(tempfile.mkdtemp(prefix="fb-async-e2e-"))
    base.chmod(0o755)  # the postgres user must reach its data dir inside
    logs = base / "logs"
    logs.mkdir()
    print(f"e2e: run directory {base}")
    token = "e2e" + secrets.token_urlsafe(24)
    sup = Supervisor(logs)
    out = Outcome()
    dumped = False
    try:
        deploy_and_run(sup, base, token, out)
        dumped = True
    except BaseException as exc:  # also Ctrl-C: stop everything below, then report
        out.error = f"{type(exc).__name__}: {exc}".replace(token, "<TOKEN>")
        (logs / "e2e-error.txt").write_text(traceback.format_exc().replace(token, "<TOKEN>"))
    finally:
        print("e2e: stopping everything it started ...")
        sup.stop_all(STOP_ORDER)
        out.leftovers = [line.replace(token, "<TOKEN>") for line in sup.leftovers()]
    if dumped:
        home_logs = base / "airflow_home" / "logs"
        out.scans = [
            scan_logs(token, [logs, home_logs], control="Submitting"),
            scan_sql_dump(token, base / "metadata.sql", control="facebook_graph_default"),
            scan_blob(token, base / "redis" / "dump.rdb", "Redis dataset bytes", control="redis-ver"),
        ]
    if not args.keep:
        shutil.rmtree(base / "pgdata", ignore_errors=True)
    text, ok = summary(out, time.monotonic() - started)
    print("\n=== airflow_fb_async e2e summary ===\n")
    print(text)
    print(
        f"\ne2e: {'PASSED' if ok else 'FAILED'} (logs in {logs}, Airflow logs in {base / 'airflow_home' / 'logs'})"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
