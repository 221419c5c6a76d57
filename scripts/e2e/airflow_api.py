"""Talking to the running deployment: Airflow's REST API (as a user would) and its metadata DB (what
the API does not show: which triggerer holds which trigger). The emulator is observed through
``tests.emu_admin.EmulatorAdmin``, the admin client every test uses."""

from __future__ import annotations

from typing import Any

import psycopg2
import requests

TERMINAL_RUN_STATES = {"success", "failed"}


class AirflowApi:
    """The public REST API (``/api/v2``) with a JWT from the simple auth manager's ``/auth/token``."""

    def __init__(self, base_url: str, username: str, password: str) -> None:
        self.base_url = base_url
        self.username = username
        self.password = password
        self.session = requests.Session()

    def healthy(self) -> bool:
        try:
            return self.session.get(f"{self.base_url}/api/v2/monitor/health", timeout=5).ok
        except requests.RequestException:
            return False

    def login(self) -> None:
        resp = self.session.post(
            f"{self.base_url}/auth/token",
            json={"username": self.username, "password": self.password},
            timeout=30,
        )
        resp.raise_for_status()
        self.session.headers["Authorization"] = f"Bearer {resp.json()['access_token']}"

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        resp = self.session.request(method, f"{self.base_url}/api/v2/{path}", timeout=30, **kwargs)
        if not resp.ok:
            raise RuntimeError(f"{method} /api/v2/{path}: HTTP {resp.status_code} {resp.text[:300]}")
        return resp.json() if resp.content else None

    def dag_known(self, dag_id: str) -> bool:
        resp = self.session.get(f"{self.base_url}/api/v2/dags/{dag_id}", timeout=30)
        return resp.ok

    def add_connection(self, conn_id: str, conn_type: str, host: str, password: str, extra: str) -> None:
        body = {"connection_id": conn_id, "conn_type": conn_type, "host": host, "password": password}
        self.call("POST", "connections", json={**body, "extra": extra})

    def trigger(self, dag_id: str, conf: dict[str, Any]) -> str:
        """A manual run with no logical date (as the UI's trigger button and most API users do)."""
        run = self.call("POST", f"dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf})
        return str(run["dag_run_id"])

    def run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.call("GET", f"dags/{dag_id}/dagRuns/{run_id}")
        return result

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        tis: list[dict[str, Any]] = self.call(
            "GET", f"dags/{dag_id}/dagRuns/{run_id}/taskInstances", params={"limit": 1000}
        )["task_instances"]
        return tis

    def task_instance(self, dag_id: str, run_id: str, task_id: str) -> dict[str, Any]:
        ti: dict[str, Any] = self.call("GET", f"dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}")
        return ti


class MetaDB:
    """Read-only looks into the metadata DB for what the REST API does not expose."""

    def __init__(self, host: str, port: int, password: str) -> None:
        self.conn = psycopg2.connect(
            host=host, port=port, user="airflow", password=password, dbname="airflow"
        )
        self.conn.autocommit = True

    def rows(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        with self.conn.cursor() as cur:
            cur.execute(sql, args)
            return list(cur.fetchall())

    def triggerer_jobs(self) -> list[int]:
        """Ids of running triggerer jobs, oldest first."""
        sql = "SELECT id FROM job WHERE job_type = 'TriggererJob' AND state = 'running' ORDER BY id"
        return [int(r[0]) for r in self.rows(sql)]

    def heartbeat_age(self, job_id: int) -> float:
        """Seconds since the job's last heartbeat, by the database's clock."""
        sql = "SELECT extract(epoch FROM now() - latest_heartbeat) FROM job WHERE id = %s"
        return float(self.rows(sql, job_id)[0][0])

    def wait_triggers(
        self, dag_id: str, run_ids: list[str], task_id: str
    ) -> dict[str, tuple[int, int | None]]:
        """``{run_id: (trigger_id, triggerer_id)}`` of the deferred ``task_id`` of those runs."""
        sql = (
            "SELECT ti.run_id, t.id, t.triggerer_id FROM task_instance ti JOIN trigger t ON t.id = ti.trigger_id"
            " WHERE ti.dag_id = %s AND ti.task_id = %s AND ti.state = 'deferred' AND ti.run_id = ANY(%s)"
        )
        return {r[0]: (int(r[1]), r[2]) for r in self.rows(sql, dag_id, task_id, run_ids)}

    def close(self) -> None:
        self.conn.close()
