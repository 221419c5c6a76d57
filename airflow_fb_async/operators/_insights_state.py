"""An insights task's report runs, kept across tries in Airflow's task state store (3.3+).

Graph spends quota on every report run, and an earlier try's runs go on computing after the try
died. :class:`InsightsReportOperator` therefore keeps its plan (one job per account and date range,
with the run computing it) in ``context["task_state_store"]``, which Airflow scopes to the task
instance (dag run, task, map index) and keeps across tries::

    POST act_<id>/insights -> report_run_id -> save          (before anything else can fail)
    every settled round (completed, split, started again) -> save
    a later try: load -> read every stored run once (GET /?ids=, 50 per call)
        Job Completed        its rows are read, no new start
        still running        waited on
        Job Failed / Skipped the usual rules: a multi-day Job Failed range is split, else the range
                             is started again
        unknown to Graph     started again
    Each try has the whole max_job_retries budget per range, as before: the run an earlier try
    left for a range counts as this try's first run of it (a cleared task that gave up on a range
    starts it again rather than failing at once).

Layout under :data:`STATE_KEY`: ``{"v": 1, "request": <sha256 of the accounts and the normalized
parameters>, "jobs": [{"a": account, "s": since, "u": until, "r": run id, "d": 1, "h": [history]}, ...]}``
with empty values left out (restart counts are not kept: each try has its own budget). An account's
job takes about 50 characters, so some 1,200 accounts fit Airflow's default ``[state_store]
max_value_storage_bytes`` of 64 KiB; above it the write fails, is logged, and later tries start
new runs as before. A try whose
rendered request differs (accounts, fields, dates, parameters) starts new runs and logs why.

The store is best effort: an unreadable state, or a failed read or write of it, is logged and the
task goes on (at worst it starts runs again, as a try without a store does). Rows never depend on
it: they are read from the runs of the plan the current try holds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol

from airflow_fb_async.exceptions import GraphAPIError
from airflow_fb_async.hooks.insights import insights_params
from airflow_fb_async.hooks.insights_plan import ReportJob
from airflow_fb_async.hooks.request_set_reruns import StateStore, TaskStateStore
from airflow_fb_async.operators.task_state import InfoLogger, requests_digest
from airflow_fb_async.waiting.errors import describe_error, is_retryable, nonexistent_ids
from airflow_fb_async.waiting.report_runs import RUN_FIELDS, run_failed

if TYPE_CHECKING:
    from airflow_fb_async.hooks.graph import GraphHook

#: task_state_store key holding the report's plan (jobs and their report run ids).
STATE_KEY = "fb_insights_report_runs"
STATE_VERSION = 1
#: History entry of a run Graph no longer knows (``"<run id>:vanished"``).
VANISHED = "vanished"

# ReportJob field -> stored key, and the value left out when it has it.
_KEYS = (
    ("account", "a", None),
    ("since", "s", None),
    ("until", "u", None),
    ("run_id", "r", None),
    ("done", "d", False),
)


class TaskLog(InfoLogger, Protocol):
    """What the state logs through: a stdlib logger or the task's ``self.log``."""

    def warning(self, msg: str, /, *args: Any) -> Any:
        """Log ``msg % args`` at WARNING."""


def _job_to_state(job: ReportJob) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, key, default in _KEYS:
        value = getattr(job, name)
        if value != default:
            out[key] = int(value) if isinstance(value, bool) else value
    if job.history:
        out["h"] = list(job.history)
    return out


def _job_from_state(item: Any) -> ReportJob:
    if not isinstance(item, Mapping) or not isinstance(item.get("a"), str):
        raise ValueError(f"job {item!r}")
    values = {name: item.get(key, default) for name, key, default in _KEYS}
    values["done"] = bool(values["done"])
    history = item.get("h") or ()
    if not isinstance(history, list | tuple) or not all(isinstance(h, str) for h in history):
        raise ValueError(f"job {item!r}")
    return ReportJob(**values, history=tuple(history))


class ReportRunState:
    """The plan of one task instance's report in its task state store (see the module docstring).

    :param store: the store under :data:`STATE_KEY` (``TaskStateStore.of(context, STATE_KEY)``).
    :param accounts: the report's accounts (digits, in order).
    :param params: the report's parameters as the operator sends them (normalized before hashing).
    :param log: the task's logger.
    """

    def __init__(
        self, store: StateStore, accounts: Sequence[str], params: Mapping[str, Any], log: TaskLog
    ) -> None:
        self.store = store
        self.log = log
        self.digest = requests_digest([{"accounts": list(accounts), "params": insights_params(params)}])
        self._saved: Any = None

    @classmethod
    def of(
        cls,
        context: Mapping[str, Any],
        accounts: Sequence[str],
        params: Mapping[str, Any],
        log: TaskLog,
    ) -> ReportRunState | None:
        """The task instance's state, or None (with an INFO line) when Airflow has no state store."""
        store = TaskStateStore.of(context, STATE_KEY)
        if store is None:
            log.info(
                "insights: this Airflow has no task_state_store (Airflow 3.3+): a later try of this task "
                "starts new report runs instead of reading those this try starts"
            )
            return None
        return cls(store, accounts, params, log)

    def load(self) -> list[ReportJob] | None:
        """The plan an earlier try saved for the same request, or None (nothing usable stored)."""
        try:
            raw = self.store.load()
        except Exception as err:
            self.log.warning("insights: could not read the task state store (%s): starting new runs", err)
            return None
        if raw is None:
            return None
        try:
            if not isinstance(raw, Mapping) or raw.get("v") != STATE_VERSION:
                raise ValueError(f"format {raw.get('v') if isinstance(raw, Mapping) else type(raw).__name__}")
            if raw.get("request") != self.digest:
                self.log.info(
                    "insights: the rendered request (accounts, fields, dates, parameters) differs from the "
                    "one of an earlier try of this task: starting new report runs (the earlier try's runs "
                    "%s are not reused)",
                    ", ".join(str(j.get("r")) for j in raw.get("jobs") or () if isinstance(j, Mapping))[:500],
                )
                return None
            jobs = [_job_from_state(item) for item in raw.get("jobs") or ()]
        except (ValueError, TypeError) as err:
            self.log.warning("insights: unreadable report state %s (%s): starting new runs", STATE_KEY, err)
            return None
        self._saved = raw
        return jobs or None

    def save(self, jobs: Sequence[ReportJob]) -> None:
        """Store the plan (skipped when unchanged); a failed write is logged, never raised."""
        value = {"v": STATE_VERSION, "request": self.digest, "jobs": [_job_to_state(j) for j in jobs]}
        if value == self._saved:
            return
        try:
            self.store.save(value)
        except Exception as err:
            self.log.warning(
                "insights: could not write the task state store (%s): a later try may start these "
                "report runs again",
                err,
            )
            return
        self._saved = value


def read_known_runs(hook: GraphHook, run_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The report runs Graph still knows, read 50 per call: ``{run_id: fields}``.

    A run Graph names as non-existent (code 803) or leaves out of its answer is absent from the
    result; any other error is raised.
    """
    ids = list(dict.fromkeys(run_ids))
    while ids:
        try:
            got = hook.get_report_runs(ids, fields=list(RUN_FIELDS))
        except GraphAPIError as exc:
            gone = nonexistent_ids(exc, ids)
            if not gone:
                raise
            ids = [i for i in ids if i not in gone]
            continue
        return {i: dict(got[i]) for i in ids if got.get(i)}
    return {}


def resumable(jobs: Sequence[ReportJob], runs: Mapping[str, Any]) -> tuple[list[ReportJob], list[str]]:
    """Jobs of an earlier try ready for this try's first round over ``runs`` (every run the earlier
    try started, read again): ``(jobs, log lines)``.

    Every try has the whole ``max_job_retries`` budget per range, as before runs were kept: the run
    an earlier try left for a range counts as this try's first run of it. So restart counts start
    at 0, and a job whose run failed or was skipped gets -1, which the round's restart (or split)
    brings back to 0: a task that gave up on a range and is cleared starts it again instead of
    failing at once. A job whose run Graph no longer knows gets ``run_id=None`` (started again,
    not counted). Done jobs are marked not done, so that the round settles them from what Graph
    says now (a completed run is done again, with its dates).
    """
    out: list[ReportJob] = []
    notes: list[str] = []
    for job in jobs:
        run = runs.get(job.run_id) if job.run_id else None
        if job.run_id is None:
            out.append(replace(job, retries=0))
        elif run is None:
            notes.append(
                f"act_{job.account} {job.range_text}: report run {job.run_id} of an earlier try is unknown "
                "to Graph; starting it again"
            )
            history = (*job.history, f"{job.run_id}:{VANISHED}")
            out.append(replace(job, run_id=None, done=False, retries=0, history=history))
        else:
            out.append(replace(job, done=False, retries=-1 if run_failed(run) else 0))
    return out, notes


def resume_runs(
    hook: GraphHook, jobs: Sequence[ReportJob], log: TaskLog
) -> tuple[list[ReportJob], dict[str, dict[str, Any]]]:
    """A later try's start: read every run an earlier try started (completed ones too: Graph may
    have dropped them) -> ``(jobs, runs)`` for one settling round. Runs Graph no longer knows are
    to be started again; a transient read error leaves the plan as it is (``runs`` empty: waited on).
    """
    ids = [str(j.run_id) for j in jobs if j.run_id]
    log.info(
        "insights: %d report run(s) started by an earlier try, read again: %s", len(ids), ", ".join(ids[:10])
    )
    try:
        runs = read_known_runs(hook, ids)
    except Exception as exc:
        if not is_retryable(exc):
            raise
        log.warning(
            "insights: reading the earlier runs failed (%s): waiting on them", describe_error(exc, hook.scrub)
        )
        return list(jobs), {}
    resumed, notes = resumable(jobs, runs)
    for note in notes:
        log.warning("insights: %s", note)
    return resumed, runs
