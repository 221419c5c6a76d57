"""Run the pytest suite N times in a row with two CPU-bound processes beside it (``make stress``).

A test that passes on a quiet machine but fails when the cores are busy asserts timing or
scheduling luck instead of invariants: this is how such tests are found (issue 13). The two busy
loops are plain Python processes (``while True: pass``), started before the first run and killed
in ``finally`` whatever happens. Each run is the same command as ``make test``'s pytest step
(``scripts/run_pytest.py``, with ``-p no:cacheprovider`` so no run learns from the previous one);
its whole output goes to ``.stress/<stamp>/run-K.log``.

Prints one line per run (``run 3/10: passed (585 passed in 201 s)``, or the failing test ids and
the log's path), then ``k/N passed``. Exits 0 only when every run passed.

Usage: ``python scripts/stress.py [-n N] [--busy 2] [--log-dir .stress] [pytest args...]``
(``make stress N=10 STRESS_ARGS="tests/triggers tests/sensors"``).
"""

from __future__ import annotations

import argparse
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RUN_PYTEST = REPO / "scripts" / "run_pytest.py"
BUSY_LOOP = "while True:\n    pass\n"
# pytest's closing line, e.g. "585 passed, 2 warnings in 201.35s (0:03:21)" (with or without "=").
_SUMMARY_RE = re.compile(r"^=*\s*(\d+ (?:passed|failed|error|errors|skipped|deselected)\b.*?) in ([\d.]+)s\b")
_FAILED_RE = re.compile(r"^(FAILED|ERROR) (\S+)")


def start_busy_loops(count: int) -> list[subprocess.Popen[bytes]]:
    """``count`` CPU-bound Python processes (one core each while they run)."""
    return [subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) for _ in range(count)]


def stop_busy_loops(procs: list[subprocess.Popen[bytes]]) -> None:
    """Kill the busy loops this script started (by their own handles, nothing else)."""
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
    for proc in procs:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass


def summarize(log_text: str) -> tuple[str, list[str]]:
    """(pytest's closing summary without its duration, the failing/erroring test ids)."""
    summary = ""
    failed: list[str] = []
    for line in log_text.splitlines():
        match = _SUMMARY_RE.match(line.strip())
        if match:
            summary = f"{match.group(1)} in {float(match.group(2)):.0f} s"
        failure = _FAILED_RE.match(line.strip())
        if failure and failure.group(2) not in failed:
            failed.append(failure.group(2))
    return summary, failed


def run_once(index: int, total: int, pytest_args: list[str], log_dir: Path) -> bool:
    """One pytest run; prints its line and returns whether it passed."""
    log_path = log_dir / f"run-{index}.log"
    command = [sys.executable, str(RUN_PYTEST), *pytest_args]
    started = time.monotonic()
    with log_path.open("w", encoding="utf-8") as log:
        log.write(f"$ {shlex.join(command)}\n")
        log.flush()
        code = subprocess.call(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    wall = time.monotonic() - started
    summary, failed = summarize(log_path.read_text(encoding="utf-8", errors="replace"))
    summary = summary or f"no pytest summary, exit code {code}, {wall:.0f} s"
    if code == 0:
        print(f"run {index}/{total}: passed ({summary})", flush=True)
        return True
    print(f"run {index}/{total}: FAILED ({summary}; log {log_path})", flush=True)
    for test_id in failed:
        print(f"    {test_id}", flush=True)
    return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--runs", type=int, default=10, help="how many runs (default 10)")
    parser.add_argument(
        "--busy", type=int, default=2, help="CPU-bound processes beside the suite (default 2)"
    )
    parser.add_argument(
        "--log-dir", default=str(REPO / ".stress"), help="where run logs go (default .stress/)"
    )
    args, pytest_args = parser.parse_known_args(argv)
    if args.runs < 1:
        parser.error("--runs must be >= 1")
    if "-p" not in pytest_args or "no:cacheprovider" not in pytest_args:
        pytest_args = [*pytest_args, "-p", "no:cacheprovider"]
    log_dir = Path(args.log_dir) / time.strftime("%Y%m%d-%H%M%S")
    log_dir.mkdir(parents=True, exist_ok=True)

    print(
        f"stress: {args.runs} run(s) of `{shlex.join(['scripts/run_pytest.py', *pytest_args])}` "
        f"beside {args.busy} busy loop(s); logs in {log_dir}",
        flush=True,
    )
    busy = start_busy_loops(args.busy)
    passed = 0
    try:
        for index in range(1, args.runs + 1):
            passed += run_once(index, args.runs, pytest_args, log_dir)
    finally:
        stop_busy_loops(busy)
    print(f"{passed}/{args.runs} passed", flush=True)
    return 0 if passed == args.runs else 1


if __name__ == "__main__":
    sys.exit(main())
