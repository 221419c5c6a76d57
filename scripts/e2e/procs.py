"""Start, kill and stop the e2e's processes by pid, and prove that none is left.

Every service runs in its own session (process group) with its output in a log file. Stopping is by
pid only: the service's tree is snapshotted (psutil), the leader gets its stop signal, and whatever
of the snapshot and the group is still alive after a bounded wait gets SIGKILL. Airflow's task
supervisor puts each task in a process group of its own, which is why trees matter, not only groups.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil


def wait_until(what: str, check: Callable[[], object], timeout: float, interval: float = 0.5) -> object:
    """Poll ``check`` until it returns something truthy; raise naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


@dataclass
class Service:
    """One started process: its name, Popen handle, log file and the signal that stops it cleanly."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    stop_signal: int = signal.SIGTERM
    killed: bool = False
    seen: dict[int, float] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def tree(self) -> list[psutil.Process]:
        """The leader and its live descendants (remembered, so orphans can still be found)."""
        try:
            root = psutil.Process(self.pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            procs = []
        for proc in procs:
            try:
                self.seen[proc.pid] = proc.create_time()
            except psutil.NoSuchProcess:
                pass
        return procs

    def alive(self) -> bool:
        return self.proc.poll() is None


class Supervisor:
    """Owns every process the e2e starts; ``stop_all`` (called from a ``finally``) ends them all."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.services: dict[str, Service] = {}

    def start(
        self,
        name: str,
        argv: Sequence[str],
        env: dict[str, str],
        *,
        cwd: Path | None = None,
        user: str | None = None,
        stop_signal: int = signal.SIGTERM,
        stdout: int | None = None,
    ) -> Service:
        """Start ``argv`` in a new session, output to ``<log_dir>/<name>.log`` (or a pipe for stdout)."""
        if name in self.services:
            raise ValueError(f"service {name!r} already started")
        log = self.log_dir / f"{name}.log"
        out = log.open("ab")
        try:
            proc = subprocess.Popen(
                list(argv),
                env=env,
                cwd=cwd,
                user=user,
                stdin=subprocess.DEVNULL,
                stdout=stdout if stdout is not None else out,
                stderr=out,
                start_new_session=True,
            )
        finally:
            out.close()
        service = Service(name, proc, log, stop_signal)
        self.services[name] = service
        return service

    def kill_hard(self, name: str) -> list[int]:
        """SIGKILL a service's whole tree at once, as a crash or OOM kill would; returns the pids."""
        service = self.services[name]
        procs = service.tree()
        for proc in procs:
            try:
                proc.send_signal(signal.SIGKILL)
            except psutil.NoSuchProcess:
                pass
        service.proc.wait(timeout=30)
        service.killed = True
        return [p.pid for p in procs]

    def stop(self, name: str, timeout: float = 30.0) -> None:
        """Stop one service: its signal to the leader, then SIGKILL to what is left of its tree."""
        service = self.services[name]
        procs = service.tree()
        if service.alive():
            try:
                service.proc.send_signal(service.stop_signal)
                service.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        _, still = psutil.wait_procs(procs, timeout=5)
        for proc in still:
            try:
                proc.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(still, timeout=10)
        try:  # anything left in the service's own process group
            os.killpg(service.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if service.alive():
            service.proc.kill()
            service.proc.wait(timeout=10)

    def stop_all(self, order: Sequence[str] = ()) -> None:
        """Stop every service: those in ``order`` first (in that order), then the rest, newest first."""
        names = [n for n in order if n in self.services]
        names += [n for n in reversed(self.services) if n not in names]
        for name in names:
            try:
                self.stop(name)
            except Exception as exc:  # keep stopping the others whatever happens to one
                print(f"e2e: stopping {name} failed: {exc}")

    def leftovers(self) -> list[str]:
        """Processes this supervisor ever saw (or that sit in one of its groups) that are still alive."""
        seen: dict[int, float] = {}
        for service in self.services.values():
            seen.update(service.seen)
        groups = {s.pid for s in self.services.values()}
        alive = []
        for proc in psutil.process_iter(["pid", "name", "cmdline", "status", "create_time"]):
            try:
                if proc.info["status"] == psutil.STATUS_ZOMBIE:
                    continue
                ours = seen.get(proc.pid) == proc.info["create_time"]
                if ours or os.getpgid(proc.pid) in groups:
                    alive.append(f"{proc.pid} {' '.join(proc.info['cmdline'] or [proc.info['name']])[:120]}")
            except (psutil.NoSuchProcess, ProcessLookupError):
                continue
        return alive
