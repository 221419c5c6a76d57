"""The e2e deployment's pieces: PostgreSQL, Redis, the Graph emulator and the Airflow components.

Everything binds to 127.0.0.1 on free ports and lives under one run directory. PostgreSQL runs as the
``postgres`` user from a data directory created for this run; Redis keeps nothing on disk unless
asked (the final scan saves a dump to look for the token). The Airflow environment is plain
``AIRFLOW__*`` variables shared by every component, as a container deployment would set them.
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from cryptography.fernet import Fernet
from procs import Service, Supervisor, wait_until

ROOT = Path(__file__).resolve().parents[2]
PG_BIN = Path("/usr/lib/postgresql/15/bin")
AIRFLOW_BIN = Path(sys.executable).parent / "airflow"
#: ``[triggerer]`` heartbeat and the silence after which another triggerer takes a triggerer's work.
TRIGGERER_HEARTBEAT = 2
TAKEOVER_THRESHOLD = 12


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the kernel's pick)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class Postgres:
    """A throwaway PostgreSQL 15 cluster owned by ``postgres``, database ``airflow`` for user ``airflow``."""

    data_dir: Path
    port: int
    password: str

    @property
    def sqlalchemy_url(self) -> str:
        return f"postgresql+psycopg2://airflow:{self.password}@127.0.0.1:{self.port}/airflow"

    def _client(self, program: str) -> list[str]:
        """A client program's argv up to the database: the superuser over the cluster's own socket."""
        return [str(PG_BIN / program), "-h", str(self.data_dir), "-p", str(self.port), "-U", "postgres"]

    def psql(self, sql: str) -> str:
        """Run SQL as the superuser over the cluster's own Unix socket."""
        return subprocess.run(
            [*self._client("psql"), "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-Atc", sql],
            user="postgres",
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout

    def dump(self, target: Path) -> None:
        """A plain-SQL dump of the whole ``airflow`` database (every row, one line each)."""
        with target.open("wb") as out:
            subprocess.run(
                [*self._client("pg_dump"), "-d", "airflow"],
                user="postgres",
                check=True,
                stdout=out,
                timeout=120,
            )


def start_postgres(sup: Supervisor, base: Path) -> Postgres:
    """initdb a fresh cluster (scram passwords over TCP), start it on a free port, create the DB."""
    data_dir = base / "pgdata"
    data_dir.mkdir(mode=0o700)
    pw = pwd.getpwnam("postgres")
    os.chown(data_dir, pw.pw_uid, pw.pw_gid)
    subprocess.run(
        [
            *(str(PG_BIN / "initdb"), "-D", str(data_dir), "-U", "postgres", "-E", "UTF8"),
            *("--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync"),
        ],
        user="postgres",
        check=True,
        capture_output=True,
        timeout=120,
    )
    pg = Postgres(data_dir, free_port(), secrets.token_hex(12))
    sup.start(
        "postgres",
        [
            *(str(PG_BIN / "postgres"), "-D", str(data_dir), "-p", str(pg.port)),
            *("-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={data_dir}"),
            *("-c", "max_connections=200", "-c", "fsync=off", "-c", "synchronous_commit=off"),
        ],
        env={"PATH": os.environ["PATH"], "LANG": "C.UTF-8"},
        user="postgres",
        stop_signal=signal.SIGINT,  # "fast" shutdown: do not wait for clients to leave
    )
    wait_until("PostgreSQL to accept connections", lambda: _pg_ready(pg), timeout=60)
    pg.psql(f"CREATE ROLE airflow LOGIN PASSWORD '{pg.password}'")
    pg.psql("CREATE DATABASE airflow OWNER airflow ENCODING 'UTF8'")
    return pg


def _pg_ready(pg: Postgres) -> bool:
    try:
        pg.psql("SELECT 1")
    except subprocess.CalledProcessError:
        return False
    return True


def start_redis(sup: Supervisor, base: Path) -> int:
    """Redis 7 on a free loopback port, no persistence (the token scan asks for one dump at the end)."""
    port = free_port()
    redis_dir = base / "redis"
    redis_dir.mkdir()
    sup.start(
        "redis",
        [
            *("redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"),
            *("--dir", str(redis_dir), "--dbfilename", "dump.rdb", "--daemonize", "no"),
        ],
        env={"PATH": os.environ["PATH"]},
    )
    wait_until("Redis to listen", lambda: port_open(port), timeout=30, interval=0.2)
    return port


def redis_dump(port: int, base: Path) -> Path:
    """Ask Redis to write its whole dataset to disk and return the file."""
    subprocess.run(["redis-cli", "-p", str(port), "SAVE"], check=True, capture_output=True, timeout=60)
    return base / "redis" / "dump.rdb"


def start_emulator(sup: Supervisor, token: str) -> tuple[Service, str]:
    """The Graph emulator on a free port; its first stdout line announces the base URL."""
    service = sup.start(
        "emulator",
        [sys.executable, "-m", "airflow_fb_async.emulator", "--port", "0", "--token", token],
        env=dict(os.environ),
        cwd=ROOT,
        stdout=subprocess.PIPE,
    )
    assert service.proc.stdout is not None
    line = service.proc.stdout.readline().decode()
    service.log.write_text(line)
    url = next((w for w in line.split() if w.startswith("http://")), None)
    if url is None:
        raise RuntimeError(f"the emulator did not announce its URL: {line!r}")
    return service, url.rstrip("/")


@dataclass
class AirflowDeployment:
    """The shared Airflow settings of one run, and the per-component extras."""

    home: Path
    env: dict[str, str]
    api_port: int

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def component_env(self, **extra: str) -> dict[str, str]:
        return {**self.env, **extra}


#: The example DAGs the e2e scenario triggers (and the only ones its deployment loads).
E2E_DAGS = ("example_fb_async_ad_creation", "example_fb_batch_creatives", "example_fb_manage_sets")


def airflow_deployment(base: Path, pg: Postgres, redis_port: int, admin_password: str) -> AirflowDeployment:
    """A CeleryExecutor deployment on PostgreSQL + Redis with short heartbeats so that kills show fast.

    A triggerer is declared dead after 12 s without a heartbeat (2 s heartbeats), a task after 30 s
    (default 300 s): both keep the run short and stay well above what a loaded 2-core machine delays.
    Tasks get 2 retries by default (the examples set none) so that a killed worker's task is retried.
    """
    home = base / "airflow_home"
    home.mkdir()
    # Only the DAGs the scenario drives: other examples (a nightly insights pipeline) would be
    # scheduled by the running scheduler and add objects the checks do not expect.
    dags = home / "dags"
    dags.mkdir()
    for dag_id in E2E_DAGS:
        shutil.copy(ROOT / "dags_examples" / f"{dag_id}.py", dags)
    shutil.copytree(ROOT / "dags_examples" / "assets", dags / "assets")
    (home / "passwords.json").write_text(json.dumps({"e2e": admin_password}))
    api_port = free_port()
    env = {
        key: value for key, value in os.environ.items() if not key.startswith(("AIRFLOW", "PYTEST", "CHAOS_"))
    }
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__DEFAULT_TASK_RETRIES": "2",
            "AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY": "2",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "e2e:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(api_port),
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{api_port}",
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": pg.sqlalchemy_url,
            "AIRFLOW__CELERY__BROKER_URL": f"redis://127.0.0.1:{redis_port}/0",
            # The driver must be named: plain db+postgresql:// makes SQLAlchemy 2.1 look for psycopg 3.
            "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + pg.sqlalchemy_url,
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": "3",
            "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": str(TRIGGERER_HEARTBEAT),
            "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": str(TAKEOVER_THRESHOLD),
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "30",
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "3",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return AirflowDeployment(home, env, api_port)


def airflow_cli(dep: AirflowDeployment, log: Path, *args: str, timeout: float = 300) -> None:
    """One ``airflow`` CLI command to completion, output appended to ``log``; raise if it fails."""
    with log.open("ab") as out:
        out.write(f"\n$ airflow {' '.join(args)}\n".encode())
        out.flush()
        code = subprocess.call(
            [str(AIRFLOW_BIN), *args], env=dep.env, stdout=out, stderr=subprocess.STDOUT, timeout=timeout
        )
    if code != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
        raise RuntimeError(f"`airflow {' '.join(args)}` exited {code}; last lines of {log}:\n{tail}")


def start_component(sup: Supervisor, dep: AirflowDeployment, name: str, *args: str, **env: str) -> Service:
    """Start one long-running Airflow component (``airflow <args>``) under the supervisor."""
    return sup.start(name, [str(AIRFLOW_BIN), *args], dep.component_env(**env), cwd=ROOT)
