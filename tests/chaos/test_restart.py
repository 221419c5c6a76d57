"""Chaos campaign (issue 9): the emulator process restarts with ``--state FILE`` in the middle of the
processing while the trigger is waiting; the pipeline completes once it is back, every object
exactly once."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_fb_async.hooks.graph import GraphHook
from airflow_fb_async.operators.async_batch import SubmitAsyncBatchOperator
from airflow_fb_async.operators.results import AsyncRequestResultsOperator
from airflow_fb_async.triggers.async_request_set import AsyncRequestSetTrigger
from tests.chaos._support import PROFILE, by_name, ctx, multi_reads, rebuild_trigger, report, until_polled
from tests.conftest import CONN_ENV, FAST_REGAIN_UNIT_SECONDS, TEST_TOKEN, conn_json
from tests.emu_admin import EmulatorAdmin
from tests.waits import wait_for

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(600)]

ACCOUNT = "act_7300"
CAMPAIGN = {"objective": "OUTCOME_TRAFFIC", "status": "PAUSED", "special_ad_categories": []}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class EmulatorProcess:
    def __init__(self, port: int, state: Path, pace: float) -> None:
        self.args = [
            sys.executable,
            "-m",
            "airflow_fb_async.emulator",
            "--port",
            str(port),
            "--token",
            TEST_TOKEN,
            "--state",
            str(state),
            "--async-pace",
            str(pace),
        ]
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""

    def _launch(self) -> tuple[str, str]:
        """Start the process once; return its first output line and, if it exited instead of serving,
        its stderr (for the failure message)."""
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        assert self.proc.stderr is not None
        line = self.proc.stdout.readline()
        if "http://" in line:
            return line, ""
        self.proc.wait(timeout=10)
        return line, self.proc.stderr.read()

    def start(self) -> str:
        # The port may linger briefly after the previous process closed it: launch again until it serves.
        line, _ = wait_for(
            self._launch, lambda seen: "http://" in seen[0], "the emulator to start", timeout=20, interval=0.2
        )
        self.url = line[line.index("http://") :].split()[0]
        return self.url

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=20)
        self.proc.stdout.close()  # type: ignore[union-attr]
        self.proc.stderr.close()  # type: ignore[union-attr]
        self.proc = None
        return code

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


@pytest.fixture
def emulator_process(tmp_path: Path) -> Iterator[EmulatorProcess]:
    proc = EmulatorProcess(free_port(), tmp_path / "emulator-state.json", pace=15.0)
    try:
        yield proc
    finally:
        proc.kill()


async def test_emulator_restart_with_state_mid_run(
    emulator_process: EmulatorProcess,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> None:
    url = emulator_process.start()
    admin = EmulatorAdmin(url)
    # Processing is paused while the sets are created; the restarted process runs at its CLI pace.
    admin.config(regain_unit_seconds=FAST_REGAIN_UNIT_SECONDS, async_pace=0)
    monkeypatch.setenv(CONN_ENV, conn_json(url))
    n_submits, per_submit = (2, 60) if PROFILE.name == "quick" else (4, 300)
    prefix = "chaos-restart-"
    expected = {f"{prefix}s{s}-{k}" for s in range(n_submits) for k in range(per_submit)}
    ids: list[str] = []
    for s in range(n_submits):
        reqs = [
            {
                "name": f"r{k}",
                "relative_url": f"{ACCOUNT}/campaigns",
                "body": {"name": f"{prefix}s{s}-{k}", **CAMPAIGN},
            }
            for k in range(per_submit)
        ]
        ids += SubmitAsyncBatchOperator(
            task_id=f"submit{s}",
            ad_account_id=ACCOUNT,
            requests=reqs,
            name=f"restart s{s}",
            max_set_size=30,
        ).execute(ctx(task_id=f"submit{s}"))

    # Let the processing get under way, slowly (the whole work takes ~30 s at this pace), then pause it
    # again: the state saved at the restart is "part done" whatever the machine's load.
    hook = GraphHook()

    def processed() -> int:
        sets = hook.get_request_sets(ids, fields=["id", "success_count", "is_completed"])
        return sum(int(v.get("success_count") or 0) for v in sets.values())

    admin.config(async_pace=1)
    wait_for(processed, lambda n: n >= 5, "the emulator to process 5 requests", interval=0.05)
    admin.config(async_pace=0)
    done = processed()
    hook.close()
    assert 5 <= done < len(expected), done

    trigger = AsyncRequestSetTrigger(request_set_ids=ids, poll_interval=0.2)
    polls = multi_reads(admin)
    waiting = asyncio.ensure_future(_first_event(trigger))
    await until_polled(admin, polls)
    assert not waiting.done(), waiting.result()  # processing is paused: nothing can complete
    code = emulator_process.stop()  # SIGTERM mid-processing; state saved
    assert code == 0
    await asyncio.sleep(1.0)  # the trigger rides out refused connections meanwhile
    assert not waiting.done(), waiting.result() if waiting.done() else None
    # A triggerer restart happens too: the first trigger is dropped and rebuilt from serialize().
    waiting.cancel()
    try:
        await waiting
    except asyncio.CancelledError:
        pass
    assert emulator_process.start() == url  # same port, same state file
    payload = await asyncio.wait_for(_first_event(rebuild_trigger(trigger)), timeout=300)
    assert payload["status"] == "success", payload
    assert sum(c["success_count"] for c in payload["request_sets"].values()) == len(expected)

    items = AsyncRequestResultsOperator(
        task_id="results", request_set_ids=ids, max_xcom_items=len(expected) + 1
    ).execute({})
    request_ids = [i["id"] for i in items]
    created = [i["result"]["id"] for i in items if i["status"] == "SUCCESS"]
    objects = [o for o in admin.objects("campaign") if str(o.get("name", "")).startswith(prefix)]
    names = by_name(objects, prefix)
    lost = len(expected - set(names))
    dup = sum(c - 1 for c in names.values() if c > 1) + len(request_ids) - len(set(request_ids))
    report(
        request,
        [
            f"chaos [{PROFILE.name}] emulator restart with --state mid-run",
            f"  request sets {len(ids)}, requests {len(expected)}, processed before the restart {done}",
            f"  emulator exit code on SIGTERM {code}; restarted on the same port",
            f"  survived: lost {lost}, duplicated {dup}",
        ],
    )
    assert set(names) == expected
    assert all(c == 1 for c in names.values())
    assert len(request_ids) == len(set(request_ids)) == len(expected)
    assert sorted(created) == sorted(o["id"] for o in objects)
    assert os.path.getsize(tmp_path / "emulator-state.json") > 0


async def _first_event(trigger: AsyncRequestSetTrigger) -> dict:
    gen = trigger.run()
    try:
        event = await gen.__anext__()
        return event.payload
    finally:
        await gen.aclose()
