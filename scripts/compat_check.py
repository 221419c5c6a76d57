"""Check the built wheel at the other ends of what the package supports; print a table.

Each environment is a fresh virtualenv under ``.compat/<name>`` holding one Airflow, pinned by a
committed constraints file, and the wheel built from this checkout (nothing from the checkout is
on ``sys.path``):

==============  ======  ==============  ===============================
name            Python  Airflow         constraints
==============  ======  ==============  ===============================
airflow-2.11    3.11    2.11.2          constraints-airflow-2.11.txt
py3.10          3.10    3.3.2           constraints-py3.10.txt
py3.13          3.13    3.3.2           constraints-py3.13.txt
airflow-3.1     3.11    3.1.8           constraints-airflow-3.1.txt
==============  ======  ==============  ===============================

Checks, per environment: ``pip check``; every module of the package imports; ``airflow providers
hooks`` lists GraphHook; the connection form the UI gets has every extra of hooks/connection_form.py; ``airflow dags test`` of the examples against a local emulator whose
request sets take seconds, so the sensor defers and its trigger runs (the log must show it), and
the token never appears in the output. On Airflow 2.11 also a named subset of the test suite
(:data:`AIRFLOW_2_SUBSET`), run from a copy of ``tests/`` against the installed wheel.

``--quick`` (``make test``) runs one example per environment and skips airflow-3.1; the default
(``make compat``) runs every environment and all three examples. Venvs are built once and rebuilt
only when their constraints file or interpreter changes (``--rebuild`` forces it); the wheel is
rebuilt and reinstalled on every run.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CACHE = REPO / ".compat"
TOKEN = "compat-check-token-7d41c9"
EXAMPLES = ("example_fb_async_ad_creation", "example_fb_batch_creatives", "example_fb_manage_sets")
# The test tools of the 2.11 venv, at the versions constraints.txt pins for the main venv.
TEST_TOOLS = ("pytest", "pytest-timeout", "pytest-asyncio", "hypothesis")
# The tests that run on Airflow 2.11 (about 600): hooks, connection form, triggers, sensor, operators
# run without a DAG run, provider info, bad input. The rest use Airflow 3's DAG runner (dag.test()
# with airflow.dag_processing.dagbag), airflow.sdk in tests/dags, or Airflow 3's structlog capture.
AIRFLOW_2_SUBSET = (
    "tests/hooks",
    "tests/triggers",
    "tests/sensors",
    "tests/operators/test_empty_lists.py",
    "tests/operators/test_task_state.py",
    "tests/test_provider_info.py",
    "tests/test_bad_input_sweep.py",
)
# Left out of those files: DAG runs through dag.test() (Airflow 3's runner API), and two tests that
# count log lines across caplog and the captured console (Airflow 2's console handler writes each
# record a second time there; the main suite runs them on Airflow 3).
AIRFLOW_2_DESELECT = (
    "not test_dag_ and not test_errors_are_ridden_out_once_for_all_triggers"
    " and not test_progress_logged_on_change_only"
)
# What `airflow dags test` logs when it runs a deferred task's trigger (Airflow 2.11 and 3.x alike).
DEFERRED_RE = re.compile(r"\[DAG TEST\] running trigger in line")


@dataclass
class Env:
    name: str
    python_version: str
    airflow: str
    constraints: str
    extra: tuple[str, ...] = ()
    pytest_subset: tuple[str, ...] = ()
    quick: bool = True  # part of `make test` (--quick); else `make compat` only
    results: dict[str, str] = field(default_factory=dict)
    transcript: list[tuple[str, str]] = field(default_factory=list)  # (command, its last line)

    @property
    def path(self) -> Path:
        return CACHE / self.name

    def bin(self, name: str) -> str:
        return str(self.path / "bin" / name)


ENVS = (
    Env("airflow-2.11", "3.11", "2.11.2", "constraints-airflow-2.11.txt", TEST_TOOLS, AIRFLOW_2_SUBSET),
    Env("py3.10", "3.10", "3.3.2", "constraints-py3.10.txt"),
    Env("py3.13", "3.13", "3.3.2", "constraints-py3.13.txt"),
    # Before 3.2 (connection form from the hook's methods) and before task-sdk 1.3.2 (no
    # Connection.aextra_dejson: the trigger reads the extra in a thread).
    Env("airflow-3.1", "3.11", "3.1.8", "constraints-airflow-3.1.txt", quick=False),
)


class CheckFailed(Exception):
    """One check of one environment failed; the message is the table cell's detail."""


def log(message: str) -> None:
    """One progress line (one write, so lines from parallel environments do not interleave)."""
    sys.stdout.write(f"[compat {time.strftime('%H:%M:%S')}] {message}\n")
    sys.stdout.flush()


def run(
    cmd: Sequence[str], *, env: dict[str, str] | None = None, timeout: float = 900, cwd: Path | None = None
) -> str:
    """Run a command; its combined output, or CheckFailed with the output's tail."""
    proc = subprocess.run(
        list(cmd), capture_output=True, text=True, env=env, timeout=timeout, cwd=cwd, check=False
    )
    out = proc.stdout + proc.stderr
    if proc.returncode != 0:
        tail = "\n".join(out.strip().splitlines()[-25:])
        raise CheckFailed(f"`{' '.join(cmd[:4])} ...` exited {proc.returncode}:\n{tail}")
    return out


def find_python(version: str) -> str:
    """An interpreter of this minor version: $COMPAT_PYTHON_<3_10>, pyenv's, or python<version> on PATH."""
    override = os.environ.get(f"COMPAT_PYTHON_{version.replace('.', '_')}")
    if override:
        return override
    pyenv_root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    found = sorted(glob.glob(f"{pyenv_root}/versions/{version}.*/bin/python{version}"))
    if found:
        return found[-1]
    on_path = shutil.which(f"python{version}")
    if on_path and subprocess.run([on_path, "-V"], capture_output=True, check=False).returncode == 0:
        return on_path
    raise CheckFailed(f"no Python {version} interpreter (set COMPAT_PYTHON_{version.replace('.', '_')})")


def pinned(names: Sequence[str]) -> list[str]:
    """``name==version`` for each name, from constraints.txt (the main venv's pins)."""
    pins = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        name, _, version = line.partition("==")
        pins[name.strip().lower().replace("_", "-")] = version.strip()
    return [f"{n}=={pins[n]}" if n in pins else n for n in names]


def build_wheel() -> Path:
    out = CACHE / "dist"
    shutil.rmtree(out, ignore_errors=True)
    # sdist first, then the wheel from it (build's default): a wheel built straight from the tree
    # would also carry modules left in setuptools' build/lib by an older checkout.
    run([sys.executable, "-m", "build", "--outdir", str(out), str(REPO)])
    (wheel,) = out.glob("airflow_fb_async-*.whl")
    return wheel


def ensure_venv(env: Env, wheel: Path, rebuild: bool) -> str:
    """Create (or reuse) the venv, then install this run's wheel into it; a short status."""
    python = find_python(env.python_version)
    constraints = REPO / env.constraints
    stamp_text = json.dumps([python, env.airflow, list(env.extra), constraints.read_text()], sort_keys=True)
    stamp = hashlib.sha256(stamp_text.encode()).hexdigest()
    stamp_file = env.path / ".compat-stamp"
    pip = [env.bin("python"), "-m", "pip", "--disable-pip-version-check", "-q"]
    built = "reused"
    if rebuild or not stamp_file.exists() or stamp_file.read_text() != stamp:
        log(f"{env.name}: building the venv (Python {env.python_version}, Airflow {env.airflow})")
        shutil.rmtree(env.path, ignore_errors=True)
        run([python, "-m", "venv", str(env.path)])
        # --no-compile: byte-compiling Airflow's thousands of files is most of the install time.
        airflow = f"apache-airflow=={env.airflow}"
        run(
            [*pip, "install", "--no-compile", "-c", str(constraints), airflow, str(wheel), *pinned(env.extra)]
        )
        stamp_file.write_text(stamp)
        built = "built"
    # This run's wheel, and nothing it needs that the constraints do not already hold.
    run([*pip, "install", "--no-deps", "--force-reinstall", str(wheel)])
    run([*pip, "install", "-c", str(constraints), str(wheel)])
    run([*pip, "check"])
    return f"{built}, pip check ok"


@contextmanager
def emulator(env: Env, workdir: Path) -> Iterator[str]:
    """The package's own emulator (from the wheel), request sets paced to take seconds."""
    proc = subprocess.Popen(
        [
            env.bin("python"),
            "-m",
            "airflow_fb_async.emulator",
            "--port",
            "0",
            "--token",
            TOKEN,
            "--async-pace",
            "5",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=workdir,
    )
    try:
        assert proc.stdout is not None
        match = re.search(r"http://[\w.:]+", proc.stdout.readline())
        if not match:
            raise CheckFailed("the emulator did not print its URL")
        yield match.group(0)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def airflow_env(home: Path, emulator_url: str) -> dict[str, str]:
    conn = {
        "conn_type": "facebook_graph",
        "host": emulator_url,
        "password": TOKEN,
        "extra": {"regain_unit_seconds": 0.05, "backoff_base": 0.01, "backoff_max": 0.2},
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PYTHON", "VIRTUAL_ENV"))}
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__DAGS_FOLDER=str(home / "dags"),
        AIRFLOW_CONN_FACEBOOK_GRAPH_DEFAULT=json.dumps(conn),
    )
    return env


def check_imports(env: Env, workdir: Path) -> str:
    code = (
        "import importlib, pkgutil, airflow_fb_async as p\n"
        "names = [m.name for m in pkgutil.walk_packages(p.__path__, 'airflow_fb_async.')]\n"
        "[importlib.import_module(n) for n in names]\n"
        "assert p.__file__ and 'site-packages' in p.__file__, p.__file__\n"
        "print('MODULES', len(names))\n"
    )
    out = run([env.bin("python"), "-c", code], cwd=workdir)
    match = re.search(r"^MODULES (\d+)$", out, re.M)
    return f"{match.group(1) if match else '?'} modules from the wheel"


def check_hooks(env: Env, aenv: dict[str, str]) -> str:
    out = run([env.bin("airflow"), "providers", "hooks"], env=aenv)
    line = next((ln for ln in out.splitlines() if "airflow_fb_async.hooks.graph.GraphHook" in ln), None)
    env.transcript.append(("airflow providers hooks", " ".join((line or "").split())))
    if line is None or "facebook_graph" not in line:
        raise CheckFailed(f"GraphHook not listed by `airflow providers hooks`:\n{out[-2000:]}")
    if re.search(r"Traceback|Exception when importing|Error", out):
        raise CheckFailed(f"`airflow providers hooks` reported an error:\n{out[-2000:]}")
    return "GraphHook listed"


# What the UI's connection form gets: Airflow 3's API builds it with stand-ins for Flask-AppBuilder
# (from provider info on 3.2+, from the hook's methods before); Airflow 2's Flask UI reads
# ProvidersManager (the hook's methods).
_FORM_CODE = """
try:
    from airflow.api_fastapi.core_api.services.ui.connections import HookMetaService
    _, widgets, behaviours = HookMetaService._get_hooks_with_mocked_fab()
except ImportError:
    from airflow.providers_manager import ProvidersManager
    manager = ProvidersManager()
    widgets, behaviours = manager.connection_form_widgets, manager.field_behaviours
ours = [k for k in widgets if k.startswith("extra__facebook_graph__")]
print("FORM", len(ours), behaviours["facebook_graph"]["hidden_fields"])
"""


def extra_field_count() -> int:
    """How many extras the form must show: the ``ExtraField(...)`` entries of connection_form.py
    (read as text, so this script needs no Airflow of its own)."""
    source = REPO / "airflow_fb_async" / "hooks" / "connection_form.py"
    return len(re.findall(r"^\s+ExtraField\(", source.read_text(), re.M))


def check_form(env: Env, aenv: dict[str, str]) -> str:
    out = run([env.bin("python"), "-c", _FORM_CODE], env=aenv)
    match = re.search(r"^FORM (\d+) (.*)$", out, re.M)
    expected = str(extra_field_count())
    if not match or match.group(1) != expected:
        raise CheckFailed(f"the connection form does not hold the {expected} extras:\n{out[-1500:]}")
    return f"{match.group(1)} extras, hidden {match.group(2)}"


def check_example(env: Env, aenv: dict[str, str], dag_id: str) -> str:
    out = run([env.bin("airflow"), "dags", "test", dag_id], env=aenv, timeout=600)
    lines = [ln for ln in out.splitlines() if ln.strip()]
    last = next((ln for ln in reversed(lines) if "DagRun Finished" in ln), lines[-1])  # not a stderr warning
    env.transcript.append((f"airflow dags test {dag_id}", last))
    if TOKEN in out:
        raise CheckFailed(f"{dag_id}: the access token appears in the output")
    if dag_id == "example_fb_async_ad_creation" and not DEFERRED_RE.search(out):
        raise CheckFailed(f"{dag_id}: the sensor did not defer")
    return "ok" + (", deferred" if dag_id == "example_fb_async_ad_creation" else "")


def check_pytest(env: Env, workdir: Path) -> str:
    """The named subset, from a copy of tests/ so the package comes from the installed wheel."""
    for folder in ("tests", "dags_examples"):
        shutil.copytree(REPO / folder, workdir / folder, ignore=shutil.ignore_patterns("__pycache__"))
    cmd = [
        env.bin("python"), "-m", "pytest", "-c", str(REPO / "pyproject.toml"), "--rootdir", str(workdir),
        "-q", "-p", "no:cacheprovider", "-o", "log_level=WARNING", "-k", AIRFLOW_2_DESELECT, *env.pytest_subset,
    ]  # fmt: skip
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PYTHON", "VIRTUAL_ENV"))}
    out = run(cmd, cwd=workdir, env=clean, timeout=1200)
    summary = [ln for ln in out.splitlines() if re.search(r"\d+ passed", ln)]
    return summary[-1].strip("= ") if summary else "no summary line"


def check_env(env: Env, wheel: Path, *, quick: bool, rebuild: bool) -> None:
    """Every check of one environment, in order, stopping at the first failure (``env.results``)."""
    log(f"{env.name}: checking")
    steps: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory(prefix=f"compat-{env.name}-") as tmp:
        work = Path(tmp)
        home = work / "airflow_home"
        (home / "dags").mkdir(parents=True)
        for dag_id in EXAMPLES:
            shutil.copy(REPO / "dags_examples" / f"{dag_id}.py", home / "dags")
        shutil.copytree(REPO / "dags_examples" / "assets", home / "dags" / "assets")
        try:
            steps.append(("install", ensure_venv(env, wheel, rebuild)))
            steps.append(("import", check_imports(env, work)))
            with emulator(env, work) as url:
                aenv = airflow_env(home, url)
                run([env.bin("airflow"), "db", "migrate"], env=aenv)
                steps.append(("providers hooks", check_hooks(env, aenv)))
                steps.append(("connection form", check_form(env, aenv)))
                for dag_id in EXAMPLES[:1] if quick else EXAMPLES:
                    steps.append((dag_id, check_example(env, aenv, dag_id)))
            if env.pytest_subset:
                steps.append(("pytest subset", check_pytest(env, work)))
        except (CheckFailed, subprocess.TimeoutExpired) as exc:
            steps.append(("FAILED", str(exc)))
    env.results = dict(steps)
    log(f"{env.name}: {'FAILED' if 'FAILED' in env.results else 'ok'}")


def print_table(envs: Sequence[Env]) -> None:
    rows = [("env", "check", "result")]
    for env in envs:
        label = f"{env.name} (Python {env.python_version}, Airflow {env.airflow})"
        for check, result in env.results.items():
            rows.append((label, check, result.splitlines()[0] if result else ""))
            label = ""
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for i, row in enumerate(rows):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one example per environment (make test)")
    parser.add_argument("--rebuild", action="store_true", help="rebuild the cached venvs")
    parser.add_argument("--jobs", type=int, default=3, help="environments checked at once (default 3)")
    parser.add_argument("--only", action="append", choices=[e.name for e in ENVS], help="run only this env")
    args = parser.parse_args(argv)
    envs = [e for e in ENVS if (e.name in args.only if args.only else e.quick or not args.quick)]
    started = time.monotonic()
    CACHE.mkdir(exist_ok=True)
    log("building the wheel")
    wheel = build_wheel()
    # The environments are independent (own venv, emulator, Airflow home): check them side by side.
    # Much of the time goes to pip's downloads and to runs waiting on the paced emulator.
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        for future in [
            pool.submit(check_env, e, wheel, quick=args.quick, rebuild=args.rebuild) for e in envs
        ]:
            future.result()
    print()
    print_table(envs)
    failed = [e for e in envs if "FAILED" in e.results]
    for env in failed:
        print(f"\n{env.name} FAILED:\n{env.results['FAILED']}")
    for env in envs:
        print(f"\n{env.name}: commands and their last lines")
        for command, last in env.transcript:
            state = re.search(r"\bstate=(\w+)", last)
            shown = f"{last[:110]} ... state={state.group(1)}" if state and len(last) > 160 else last
            print(f"  $ {command}\n    {shown}")
    print(f"\ncompat checks took {time.monotonic() - started:.0f}s")
    print(f"compat: {len(envs) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
