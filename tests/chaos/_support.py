"""Shared pieces of the chaos campaign: profiles, fault mixes, a fault "monkey", the report table."""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import random
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.emu_admin import EmulatorAdmin
from tests.waits import wait_for

PROFILE_NAME = os.environ.get("CHAOS_PROFILE", "quick").strip().lower() or "quick"


@dataclass(frozen=True)
class Profile:
    name: str
    submits: int  # SubmitAsyncBatchOperator tasks
    per_submit: int  # requests per submit
    max_set_size: int  # requests per set (so each submit makes several sets)
    async_pace: float  # emulator requests processed per second per set
    batch_writes: int  # standard batch creates
    batch_updates: int  # standard batch updates (POST <campaign id>) of campaigns made beforehand
    batch_reads: int  # standard batch GETs
    rounds: int  # how many times the whole scenario is repeated (fresh seed each time)


PROFILES = {
    "quick": Profile(
        "quick",
        submits=3,
        per_submit=80,
        max_set_size=40,
        async_pace=120.0,
        batch_writes=500,
        batch_updates=120,
        batch_reads=60,
        rounds=1,
    ),
    "long": Profile(
        "long",
        submits=6,
        per_submit=400,
        max_set_size=150,
        async_pace=150.0,
        batch_writes=2500,
        batch_updates=500,
        batch_reads=300,
        rounds=5,
    ),
}
PROFILE = PROFILES.get(PROFILE_NAME, PROFILES["quick"])

#: The fault mix of issue 9: ~10 % HTTP 500, 10 % null batch entries, throttling bursts, drops after
#: commit, latency jitter; and of issue 12: errors after commit on creates and updates, 10 % of POST
#: calls (plain calls, standard batches, request set creates) and 10 % of standard-batch write
#: entries: the work is done, the answer is a transient code 2 error. Probabilities are per non-admin
#: HTTP call, and per batch entry for ``entry_error_after_commit``.
RANDOM_FAULTS = {
    "500": 0.10,
    "drop_after_commit": 0.04,
    "throttle": 0.03,
    "error_after_commit": 0.10,
    "entry_error_after_commit": 0.10,
}
NULL_FRACTION = 0.10
LATENCY = 0.001
LATENCY_JITTER = 0.008


#: Retries the chaos campaign's connection allows. With ~17 % of calls faulted at random (27 % of
#: POSTs) plus a queued throttle burst of up to 3 calls, 5 retries (the tests' default) are exhausted
#: in roughly one run of a hundred (our estimate): a random operator failure that says nothing about
#: exactly-once. With 10, exhausting them takes 8 random faults in a row after a burst (< 1e-4 per
#: call even for POSTs). Exhaustion itself is tested deterministically elsewhere
#: (tests/chaos/test_secrecy.py, tests/hooks/test_graph.py).
CHAOS_MAX_RETRIES = 10


def chaos_config(emu: EmulatorAdmin, seed: int, *, async_pace: float | None = None) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "random_faults": {**RANDOM_FAULTS, "seed": seed},
        "null_fraction": NULL_FRACTION,
        "latency": LATENCY,
        "latency_jitter": LATENCY_JITTER,
    }
    if async_pace is not None:
        cfg["async_pace"] = async_pace
    return emu.config(**cfg)


def calm(emu: EmulatorAdmin) -> None:
    """Stop injecting (so the verification reads are not themselves faulted)."""
    emu.config(random_faults=None, null_fraction=0.0, latency=0.0, latency_jitter=0.0)
    emu.clear_faults()


class Monkey:
    """A background thread queueing throttle bursts (with estimated_time_to_regain_access) and
    drops or errors after commit on creates while a scenario runs."""

    def __init__(self, emu: EmulatorAdmin, seed: int, every: float = 0.25, create_regex: str | None = None):
        self.emu = EmulatorAdmin(emu.url)
        self.rng = random.Random(seed)
        self.every = every
        self.create_regex = create_regex
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chaos-monkey", daemon=True)
        self.queued: Counter[str] = Counter()

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            roll = self.rng.random()
            try:
                if roll < 0.35 and not self._throttle_queued():
                    # One burst at a time: bursts piling up while nothing calls Graph (between
                    # Airflow tasks) would throttle more consecutive calls than any wait can cure,
                    # which is not how Graph's blocks behave.
                    n = self.rng.randint(1, 3)
                    self.emu.fault("throttle", count=n, regain_minutes=self.rng.randint(1, 4))
                    self.queued["throttle burst"] += 1
                elif roll < 0.55 and self.create_regex:
                    # The create is done either way; its answer is lost, or is a transient error.
                    kind = "drop_after_commit" if roll < 0.45 else "error_after_commit"
                    self.emu.fault(kind, count=1, method="POST", path_regex=self.create_regex)
                    self.queued[f"{kind} (creates)"] += 1
            except Exception:  # the emulator may be restarting: the monkey just skips a beat
                pass

    def _throttle_queued(self) -> bool:
        faults = self.emu._get("faults")["faults"]
        return any(f["type"] == "throttle" for f in faults)

    def __enter__(self) -> Monkey:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def rebuild_trigger(trigger: Any) -> Any:
    """What a triggerer does after a restart: import the classpath, build from the serialized kwargs
    (through a JSON round trip, as they are stored in the metadata DB)."""
    classpath, kwargs = trigger.serialize()
    module, _, name = classpath.rpartition(".")
    cls = getattr(importlib.import_module(module), name)
    return cls(**json.loads(json.dumps(kwargs)))


def multi_reads(emu: EmulatorAdmin) -> int:
    """How many multi-id reads (a trigger's polls) the emulator has received so far."""
    return int(emu.counters()["calls_by_kind"].get("get_multi", 0))


async def until_polled(emu: EmulatorAdmin, since: int, polls: int = 1) -> None:
    """Wait until ``polls`` more multi-id reads than ``since`` have reached the emulator: a trigger
    under test has looked at its sets that often. Waited for in a thread, as the trigger polls on
    this event loop meanwhile."""
    await asyncio.to_thread(
        wait_for,
        lambda: multi_reads(emu),
        lambda n: n >= since + polls,
        f"{polls} trigger poll(s)",
        interval=0.05,
    )


@dataclass
class Tally:
    """What a scenario checked, for the printed table."""

    title: str
    rows: list[tuple[str, Any]] = field(default_factory=list)

    def add(self, name: str, value: Any) -> None:
        self.rows.append((name, value))


#: The fault counters of errors after commit (the work done, the answer an error), in the tables.
AFTER_COMMIT = ("error_after_commit", "entry_error_after_commit")


def fault_table(
    title: str,
    before: dict[str, Any],
    after: dict[str, Any],
    extra: list[tuple[str, Any]],
    lost: int,
    duplicated: int,
) -> list[str]:
    inj_a = after.get("faults_injected", {})
    inj_b = before.get("faults_injected", {})
    lines = [f"chaos [{PROFILE.name}] {title}", f"  {'fault injected':<34}{'count':>8}"]
    for key in ("500", "throttle", "drop", "null", "code1", "empty_page", *AFTER_COMMIT):
        if key in inj_a:
            lines.append(f"  {key:<34}{int(inj_a[key]) - int(inj_b.get(key, 0)):>8}")
    calls = int(after.get("http_calls", 0)) - int(before.get("http_calls", 0))
    lines.append(f"  {'http calls':<34}{calls:>8}")
    for name, value in extra:
        lines.append(f"  {name:<34}{value!s:>8}")
    lines.append(f"  survived: lost {lost}, duplicated {duplicated}")
    return lines


def listing(title: str, items: list[str], per_line: int = 4) -> list[str]:
    """``items`` under ``title``, ``per_line`` to a line (every one of them: nothing is elided)."""
    lines = [f"  {title}: {len(items)}"]
    width = max((len(item) for item in items), default=0) + 2
    for start in range(0, len(items), per_line):
        lines.append(
            "    " + "".join(f"{item:<{width}}" for item in items[start : start + per_line]).rstrip()
        )
    return lines


def report(request: pytest.FixtureRequest, lines: list[str]) -> None:
    """Print the table so it shows whatever the capture mode, and record it in the test report."""
    text = "\n".join(lines)
    request.node.user_properties.append(("chaos_table", text))
    tr = request.config.pluginmanager.get_plugin("terminalreporter")
    capman = request.config.pluginmanager.get_plugin("capturemanager")
    if tr is None:
        print(text)
        return
    if capman is not None:
        with capman.global_and_fixture_disabled():
            tr.write_line("")
            for line in lines:
                tr.write_line(line)
    else:
        for line in lines:
            tr.write_line(line)


@dataclass
class StubTI:
    dag_id: str = "chaos"
    task_id: str = "submit"
    run_id: str = "manual__chaos"
    map_index: int = -1
    xcoms: dict[str, Any] = field(default_factory=dict)

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcoms[key] = value


def ctx(**ti: Any) -> dict[str, Any]:
    return {"ti": StubTI(**ti)}


def by_name(objects: list[dict[str, Any]], prefix: str) -> Counter[str]:
    return Counter(o.get("name") for o in objects if str(o.get("name", "")).startswith(prefix))
