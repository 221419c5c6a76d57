"""How big the batch journal gets: a 10,000-entry standard batch run with a task-state-store journal.

Starts an in-process emulator, runs ``GraphHook.batch`` over N campaign creates with a
:class:`~airflow_fb_async.operators.task_state.TaskStateJournal` on a dict-backed store that records
every write (what Airflow's ``task_state_store`` would receive), then runs the same batch again with
the same journal, as a retry would (it must send nothing). Prints the engine state's JSON size,
what the store holds (inline or compressed parts, each under 64 KiB), how many saves and how many
characters the run wrote to the store in total.

Usage: ``python benchmarks/batch_journal.py [--n 10000] [--concurrency 4]``.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from typing import Any

import requests

TOKEN = "bench-token-0123456789abcdef"
ACCOUNT = "act_1010"


class RecordingStore:
    """``get``/``set``/``delete`` over a dict, JSON in and out like Airflow's, counting what is written."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}
        self.sets = 0
        self.chars_written = 0
        self.largest_value = 0

    def get(self, key: str, default: Any = None) -> Any:
        return json.loads(self.values[key]) if key in self.values else default

    def set(self, key: str, value: Any) -> None:
        text = json.dumps(value)  # the size Airflow checks against max_value_storage_bytes
        self.values[key] = text
        self.sets += 1
        self.chars_written += len(text)
        self.largest_value = max(self.largest_value, len(text))

    def delete(self, key: str) -> None:
        self.values.pop(key, None)


def measured_journal(store: RecordingStore, batch: list[dict[str, Any]]) -> Any:
    """A TaskStateJournal that also counts saves and what one whole-state value per save would weigh."""
    from airflow_fb_async.operators.task_state import TaskStateJournal

    class MeasuredJournal(TaskStateJournal):
        saves = 0
        whole_state_chars = 0

        def save(self, state: Any) -> None:
            self.saves += 1
            self.whole_state_chars += len(json.dumps(state))
            super().save(state)

    return MeasuredJournal(store, batch)


def http_calls(url: str) -> int:
    """The emulator's count of Graph (non-admin) HTTP calls so far."""
    return int(requests.get(f"{url}/__admin/counters", timeout=10).json()["http_calls"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()

    os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="fb_async_bench_"))
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    from airflow_fb_async.emulator import GraphEmulator

    with GraphEmulator(port=0, tokens=[TOKEN]) as emu:
        os.environ["AIRFLOW_CONN_FACEBOOK_GRAPH_DEFAULT"] = json.dumps(
            {
                "conn_type": "facebook_graph",
                "host": emu.url,
                "password": TOKEN,
                "extra": {"api_version": "v25.0"},
            }
        )
        from airflow_fb_async.hooks.graph import GraphHook
        from airflow_fb_async.operators.task_state import KEY, TaskStateJournal

        batch = [
            {
                "method": "POST",
                "relative_url": f"{ACCOUNT}/campaigns",
                "body": {"name": f"journal bench {i}", "objective": "OUTCOME_TRAFFIC"},
            }
            for i in range(args.n)
        ]
        store = RecordingStore()
        journal = measured_journal(store, batch)
        started = time.perf_counter()
        with GraphHook() as hook:
            results = hook.batch(batch, max_concurrency=args.concurrency, journal=journal)
        elapsed = time.perf_counter() - started
        ok = sum(r["code"] == 200 for r in results)
        calls = http_calls(emu.url)
        head = json.loads(store.values[KEY])
        stored = sum(len(v) for v in store.values.values())
        print(f"entries: {args.n} ({ok} code 200), batch run {elapsed:.1f} s, Graph calls: {calls}")
        print(f"engine state (compact JSON): {journal.state_chars:,} characters")
        sections = ", ".join(f"{name!r}: {len(parts)} part(s)" for name, parts in head["sections"].items())
        layout = f"inline {sorted(head['state'])}, compressed sections {{{sections}}}"
        print(f"stored in task_state_store: {stored:,} characters in {len(store.values)} keys ({layout})")
        print(f"largest single value: {store.largest_value:,} characters (Airflow warns above 65,535)")
        print(
            f"saves: {journal.saves:,}; {store.sets:,} store writes, {store.chars_written:,} characters written "
            f"(one whole-state value per save would write {journal.whole_state_chars:,})"
        )

        # A retry with the same requests and the same store: everything settled, nothing sent.
        before = calls
        with GraphHook() as hook:
            again = hook.batch(
                batch, max_concurrency=args.concurrency, journal=TaskStateJournal(store, batch)
            )
        same = [r["body"] for r in again] == [r["body"] for r in results]
        print(
            f"retry from the journal: same results: {same}, Graph calls sent: {http_calls(emu.url) - before}"
        )


if __name__ == "__main__":
    main()
