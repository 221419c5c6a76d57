"""What the e2e does to the deployment: the runs it triggers, the triggerer kill, the worker kill.

Each run gets its own ad account so that what it made in Graph can be counted apart. Phase 1 holds
the emulator's async processing (``async_pace`` 0) so the main pipeline's sensors stay deferred while a
triggerer holding them is SIGKILLed; processing resumes only once the other triggerer has taken every
one of them over, so it is the survivor that finishes them. Phase 2 slows the emulator's answers so
that a worker can be SIGKILLed between the set-create reaching Graph and its answer; the retry must
find that set by name instead of creating a second one.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from airflow_api import TERMINAL_RUN_STATES, AirflowApi, MetaDB
from procs import Supervisor, wait_until
from services import TAKEOVER_THRESHOLD

from tests.emu_admin import EmulatorAdmin

MAIN = "example_fb_async_ad_creation"
CREATIVES = "example_fb_batch_creatives"
MANAGE = "example_fb_manage_sets"
N_ADS = 3
N_CAMPAIGNS = 50
#: Seconds the emulator sleeps before doing a call in phase 2: the window the worker is killed in.
SLOW_CALL_SECONDS = 4.0


@dataclass
class Run:
    """One triggered DAG run and what it should leave in Graph (objects by type, request counts)."""

    label: str
    dag_id: str
    account: str
    conf: dict[str, Any]
    expect_objects: dict[str, int]
    expect_requests: dict[str, int]
    run_id: str = ""
    state: str = "queued"
    seconds: float = 0.0
    started: float = 0.0
    notes: list[str] = field(default_factory=list)


def main_run(label: str, account: str) -> Run:
    objects = {"campaign": 1, "adset": 1, "adcreative": 1, "ad": N_ADS, "async_request_set": 1}
    conf = {"ad_account_id": account, "n_ads": N_ADS}
    return Run(label, MAIN, account, conf, objects, {"SUCCESS": N_ADS})


def planned_runs() -> dict[str, Run]:
    creatives = {"campaign": 1, "adset": 1, "adimage": 1, "adcreative": 1, "ad": 3}
    runs = [
        main_run("main-1", "act_1001"),
        main_run("main-2", "act_1002"),
        main_run("main-3", "act_1003"),
        Run("creatives", CREATIVES, "act_2001", {"ad_account_id": "act_2001"}, creatives, {}),
        Run(
            "manage",
            MANAGE,
            "act_3001",
            {"ad_account_id": "act_3001", "n_campaigns": N_CAMPAIGNS},
            {"async_request_set": 1},  # processing is held, so the cancel stops every campaign
            {"CANCELED": N_CAMPAIGNS},
        ),
        main_run("main-kill", "act_1004"),
    ]
    return {r.label: r for r in runs}


class Scenario:
    """Drives the runs and the two kills; records what it measured for the summary."""

    def __init__(
        self,
        sup: Supervisor,
        api: AirflowApi,
        db: MetaDB,
        emu: EmulatorAdmin,
        triggerers: dict[int, str],
        airflow_logs: Path,
    ) -> None:
        self.sup = sup
        self.api = api
        self.db = db
        self.emu = emu
        self.triggerers = triggerers  # triggerer job id -> service name
        self.airflow_logs = airflow_logs
        self.runs = planned_runs()
        self.facts: dict[str, Any] = {}  # raw measurements
        self.report: list[tuple[str, str]] = []  # (check, result) lines for the summary, as measured

    # -- runs ---------------------------------------------------------------------------------
    def trigger(self, *labels: str) -> None:
        for label in labels:
            run = self.runs[label]
            run.run_id = self.api.trigger(run.dag_id, run.conf)
            run.started = time.monotonic()
            print(f"e2e: triggered {label}: {run.dag_id} {run.run_id} on {run.account}")

    def refresh(self, run: Run) -> str:
        if run.state not in TERMINAL_RUN_STATES:
            run.state = str(self.api.run(run.dag_id, run.run_id)["state"])
            if run.state in TERMINAL_RUN_STATES:
                run.seconds = time.monotonic() - run.started
                print(f"e2e: {run.label} finished: {run.state} in {run.seconds:.0f}s")
        return run.state

    def wait_finished(self, labels: list[str], timeout: float) -> None:
        def done() -> bool:
            return all(self.refresh(self.runs[label]) in TERMINAL_RUN_STATES for label in labels)

        wait_until(f"runs {labels} to finish", done, timeout=timeout, interval=2)

    # -- phase 1: a triggerer dies while holding the main pipeline's deferred sensors --------------
    def phase_triggerer_kill(self) -> None:
        mains = ["main-1", "main-2", "main-3"]
        self.emu.config(async_pace=0)  # sets stay pending: the sensors must wait in the triggerers
        self.trigger(*mains, "creatives", "manage")
        run_ids = [self.runs[label].run_id for label in mains]

        def all_held() -> dict[str, tuple[int, int | None]] | None:
            held = self.db.wait_triggers(MAIN, run_ids, "wait")
            live = set(self.db.triggerer_jobs())
            if len(held) == len(run_ids) and all(owner in live for _, owner in held.values()):
                return held
            for label in mains:  # a run that ended before deferring would make this wait pointless
                if self.refresh(self.runs[label]) in TERMINAL_RUN_STATES:
                    raise RuntimeError(f"{label} ended ({self.runs[label].state}) before its sensor deferred")
            return None

        held = wait_until("the 3 main sensors to be deferred and held by a triggerer", all_held, timeout=360)
        assert isinstance(held, dict)
        self.wait_finished(["creatives", "manage"], timeout=300)  # the manage run cancels while held
        # The sensors are still deferred: nothing can complete while processing is held.
        held = self.db.wait_triggers(MAIN, run_ids, "wait")
        if len(held) != len(run_ids):
            raise RuntimeError(f"the main sensors are no longer all deferred: {held}")
        owners = Counter(owner for _, owner in held.values())
        victim_job, n_held = owners.most_common(1)[0]
        assert victim_job is not None
        survivor_job = next(job for job in self.triggerers if job != victim_job)
        victim = self.triggerers[victim_job]
        victim_triggers = sorted(tid for tid, owner in held.values() if owner == victim_job)
        print(f"e2e: {victim} (job {victim_job}) holds {n_held} trigger(s) {victim_triggers}: SIGKILL")
        heartbeat_age = self.db.heartbeat_age(victim_job)
        killed_at = time.monotonic()
        self.sup.kill_hard(victim)

        def taken_over() -> bool:
            now = self.db.wait_triggers(MAIN, run_ids, "wait")
            return len(now) == len(run_ids) and all(owner == survivor_job for _, owner in now.values())

        wait_until(
            "the surviving triggerer to take every trigger over", taken_over, timeout=180, interval=0.5
        )
        takeover = time.monotonic() - killed_at
        print(f"e2e: {self.triggerers[survivor_job]} took them over {takeover:.1f}s after the kill")
        self.facts.update(takeover_seconds=takeover, heartbeat_age=heartbeat_age)
        self.report.append(("triggerer killed", f"{victim} holding {n_held}/{len(run_ids)} deferred sensors"))
        self.report.append(
            (
                "triggerer takeover",
                f"{takeover:.1f}s after SIGKILL, {takeover + heartbeat_age:.1f}s after its last heartbeat"
                f" (threshold {TAKEOVER_THRESHOLD}s)",
            )
        )
        self.emu.config(async_pace=200)  # now the survivor's polls see the sets complete
        self.wait_finished(mains, timeout=300)
        fired = [label for label in mains if self._fired_by(survivor_job, self.runs[label].run_id)]
        self.report.append(("events fired by", f"the survivor for {len(fired)}/{len(mains)} sensors"))
        if len(fired) != len(mains):
            raise RuntimeError(f"the surviving triggerer's logs show events only for {fired} of {mains}")

    def _fired_by(self, job: int, run_id: str) -> bool:
        """Whether triggerer job ``job`` logged the event of this run's ``wait`` trigger.

        The line is usually in the trigger's own log file (``...log.trigger.<job>.log``), but the
        triggerer sometimes writes a trigger's lines to its own output instead: both are read.
        """
        folder = self.airflow_logs / f"dag_id={MAIN}" / f"run_id={run_id}" / "task_id=wait"
        logs = [*folder.glob(f"attempt=*.log.trigger.{job}.log"), self.sup.services[self.triggerers[job]].log]
        needle = f"{run_id}/wait/"
        return any(
            "Trigger fired event" in line and needle in line
            for path in logs
            for line in path.read_text(errors="replace").splitlines()
        )

    # -- phase 2: a Celery worker dies after the set-create reached Graph, before its answer -------
    def phase_worker_kill(self, workers: list[str]) -> None:
        run = self.runs["main-kill"]
        before = self.emu.counters()
        creates_before = int(before["calls_by_kind"]["async_batch_create"])
        sets_before = int(before["request_sets_created"])
        self.emu.config(latency=SLOW_CALL_SECONDS)  # every Graph call now sleeps before doing its work
        self.trigger(run.label)

        polls = 0

        def create_arrived() -> bool:
            nonlocal polls
            polls += 1
            if polls % 40 == 0 and self.refresh(run) in TERMINAL_RUN_STATES:  # about every 2 s
                raise RuntimeError(f"{run.label} ended ({run.state}) before its submit reached Graph")
            creates = int(self.emu.counters()["calls_by_kind"]["async_batch_create"])
            return creates > creates_before

        wait_until("the submit's set-create to reach Graph", create_arrived, timeout=300, interval=0.05)
        arrived = time.monotonic()
        ti = self.api.task_instance(run.dag_id, run.run_id, "submit")
        worker = self._worker_running(workers, int(ti["pid"] or 0))
        self.sup.kill_hard(worker)
        killed_after = time.monotonic() - arrived
        self.emu.config(latency=0.0)
        print(f"e2e: SIGKILLed {worker} {killed_after:.2f}s after the set-create reached Graph")
        wait_until(
            "the killed create to commit in Graph",
            lambda: self.emu.counters()["request_sets_created"] > sets_before,
            timeout=60,
        )
        if killed_after >= SLOW_CALL_SECONDS:
            raise RuntimeError(
                f"the kill came {killed_after:.2f}s late: the create had already been answered"
            )
        self.wait_finished([run.label], timeout=360)
        submit = self.api.task_instance(run.dag_id, run.run_id, "submit")
        run.notes.append(f"submit try {submit['try_number']}")
        self.facts.update(kill_after_create=killed_after, submit_tries=submit["try_number"])
        self.report.append(
            ("worker killed", f"{worker} {killed_after:.2f}s after the set-create reached Graph")
        )
        self.report.append(
            ("submit retried", f"try {submit['try_number']} (>= 2 expected); sets checked below")
        )

    def _worker_running(self, workers: list[str], pid: int) -> str:
        """The Celery worker service whose process tree holds task process ``pid``."""
        for name in workers:
            service = self.sup.services[name]
            if service.alive() and pid in {p.pid for p in service.tree()}:
                return name
        live = {name: [p.pid for p in self.sup.services[name].tree()] for name in workers}
        raise RuntimeError(f"task pid {pid} is in no worker's tree: {live} (psutil {psutil.__version__})")
