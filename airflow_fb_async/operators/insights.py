"""Insights reports for many ad accounts: async report runs, waited on without a worker slot.

:class:`InsightsReportOperator` flow::

    check every argument (before any call)
    a later try: read the runs an earlier try started (task state store, Airflow 3.3+), no new start
    start one report run per account          POST act_<id>/insights -> report_run_id, saved at once
    one check of the runs (50 per call)       GET /?ids=...
      -> defer to AsyncReportRunTrigger       (deferrable), or run that trigger on the worker
    settle: completed runs are done; a Job Failed range over one day is split in halves; a Job
      Failed day or a Job Skipped run is started again (max_job_retries per range)
      -> start what needs starting, wait again (the plan rides in the deferral's kwargs)
    every run done: read the rows, run by run   GET <run_id>/insights, page by page
      -> JSON Lines at output_path (constant memory)  or  the rows as XCom (<= max_xcom_items)

Never a duplicate row: rows are read only once every range has a completed run, each run once, and
the file is written under a temporary name and renamed at the end (a failed try leaves nothing).
No run started twice across tries: see :mod:`airflow_fb_async.operators._insights_state`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Generator, Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow_fb_async._compat import ObjectStoragePath, conf
from airflow_fb_async.exceptions import GraphInputError, InsightsReportError
from airflow_fb_async.hooks.ids import account_digits
from airflow_fb_async.hooks.insights import insights_params
from airflow_fb_async.hooks.insights_plan import ReportJob, jobs_from_json, jobs_to_json, settle
from airflow_fb_async.jsonl import JsonlWriter, StoragePath, storage_path
from airflow_fb_async.literals import parse_literal, parse_rendered_list
from airflow_fb_async.operators._graph_operator import GraphOperator
from airflow_fb_async.operators._insights_state import ReportRunState, resume_runs
from airflow_fb_async.operators._xcom import bounded_list, check_int, limit_message, to_xcom
from airflow_fb_async.triggers.insights import AsyncReportRunTrigger
from airflow_fb_async.waiting.errors import describe_error, is_retryable
from airflow_fb_async.waiting.report_runs import RUN_FIELDS, run_event_result

if TYPE_CHECKING:
    import os

    from airflow_fb_async._compat import Context, XComArg
    from airflow_fb_async.hooks.graph import GraphHook

#: XCom key of the plan (the runs being waited on) while the task is deferred.
PLAN_XCOM_KEY = "insights_plan"
#: Report parameters with an argument of their own (not allowed in ``report_params``).
NAMED_PARAMS = ("fields", "level", "date_preset", "time_range", "time_increment", "breakdowns", "filtering")


class InsightsReportOperator(GraphOperator):
    """Run an insights report on one or many ad accounts as async report runs; write or return its rows.

    :param ad_account_ids: one account or a list (``act_<digits>`` or digits; templated; an XCom or a
        rendered list literal works). Duplicates are reported once.
    :param fields: the report's fields, a list or a comma-separated string (templated).
    :param level: ``account``, ``campaign``, ``adset`` or ``ad`` (templated).
    :param date_preset: a Graph date preset such as ``yesterday``, ``last_7d`` (templated).
    :param time_range: ``{"since": "YYYY-MM-DD", "until": "YYYY-MM-DD"}`` (templated; dates work).
        Give ``date_preset`` or ``time_range``, not both; neither means Graph's default.
    :param time_increment: 1..90 days, ``monthly`` or ``all_days`` (templated).
    :param breakdowns: breakdown names, a list or a comma-separated string (templated).
    :param filtering: a list of ``{"field", "operator", "value"}`` (templated).
    :param report_params: any other insights parameters, e.g. ``{"action_attribution_windows":
        ["7d_click"]}`` (templated; ``params`` stays Airflow's own).
    :param output_path: write the rows as JSON Lines there (a local path or any
        ``ObjectStoragePath`` URL; templated) and return ``{"path", "count", "report_runs"}``.
        Without it the rows are returned through XCom.
    :param max_xcom_items: most rows returned through XCom; more fails the task, naming
        ``output_path``, and nothing is truncated.
    :param max_job_retries: how many times a range whose run ended ``Job Failed`` (one day) or
        ``Job Skipped`` is started again before the task fails. A failed range of several days is
        split in halves instead (down to one day). Splitting changes the rows' buckets of
        ``time_increment="all_days"`` / ``"monthly"``: each half reports its own dates.
    :param deferrable: wait in the triggerer (default: ``[operators] default_deferrable``).
    :param poll_interval: seconds between reads of the runs.
    :param page_size: rows per page when reading a run (default: the connection's ``page_size``).
    :param graph_conn_id: the Graph connection (templated).
    :param api_version: Graph API version, default the connection's (templated).
    """

    template_fields: Sequence[str] = (
        "ad_account_ids",
        "fields",
        "level",
        "date_preset",
        "time_range",
        "time_increment",
        "breakdowns",
        "filtering",
        "report_params",
        "output_path",
        *GraphOperator.template_fields,
    )
    ui_color = "#e7f0fd"
    #: This try's plan in the task state store (None: no store, Airflow before 3.3).
    _report_state: ReportRunState | None = None

    def __init__(
        self,
        *,
        ad_account_ids: str | int | Sequence[str | int] | XComArg,
        fields: str | Sequence[str],
        level: str = "ad",
        date_preset: str | None = None,
        time_range: Mapping[str, Any] | str | None = None,
        time_increment: str | int | None = None,
        breakdowns: str | Sequence[str] | None = None,
        filtering: Sequence[Mapping[str, Any]] | str | None = None,
        report_params: Mapping[str, Any] | None = None,
        output_path: str | os.PathLike[str] | ObjectStoragePath | XComArg | None = None,
        max_xcom_items: int = 1000,
        max_job_retries: int = 2,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float = 30,
        page_size: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.ad_account_ids = ad_account_ids
        self.fields = fields
        self.level = level
        self.date_preset = date_preset
        self.time_range = time_range
        self.time_increment = time_increment
        self.breakdowns = breakdowns
        self.filtering = filtering
        self.report_params = report_params
        self.output_path = output_path
        self.max_xcom_items = max_xcom_items
        self.max_job_retries = max_job_retries
        self.deferrable = deferrable
        self.poll_interval = poll_interval
        self.page_size = page_size
        self._check_static_args()

    # ------------------------------------------------------------------ arguments

    def _check_static_args(self) -> None:
        """The arguments that are never templated, checked when the DAG is parsed."""
        check_int("max_xcom_items", self.max_xcom_items, 1)
        check_int("max_job_retries", self.max_job_retries, 0)
        check_int("page_size", self.page_size, 1, optional=True)
        if isinstance(self.poll_interval, bool) or not isinstance(self.poll_interval, int | float):
            raise GraphInputError(f"poll_interval must be a number of seconds, got {self.poll_interval!r}")
        if self.poll_interval < 0:
            raise GraphInputError(f"poll_interval must be >= 0, got {self.poll_interval!r}")

    def _accounts(self) -> list[str]:
        """The accounts as digits, in order, without duplicates; bad items named by index."""
        value = parse_rendered_list(self.ad_account_ids)
        if isinstance(value, str) and "," in value:
            value = value.split(",")
        items = list(value) if isinstance(value, list | tuple) else [value]
        if not items:
            raise GraphInputError("ad_account_ids is empty: give at least one ad account")
        out = []
        for index, item in enumerate(items):
            try:
                out.append(account_digits(item.strip() if isinstance(item, str) else item))
            except GraphInputError as err:
                where = "ad_account_ids" if len(items) == 1 else f"ad_account_ids[{index}]"
                raise GraphInputError(f"{where}: {err}") from None
        return list(dict.fromkeys(out))

    def _report_params(self) -> dict[str, Any]:
        """The report's parameters, checked (a :class:`GraphInputError` naming the key otherwise)."""
        extra = self.report_params or {}
        if not isinstance(extra, Mapping):
            raise GraphInputError(f"report_params must be a dict, got {type(extra).__name__} {extra!r}")
        clash = [key for key in NAMED_PARAMS if key in extra]
        if clash:
            raise GraphInputError(
                f"report_params: {', '.join(map(repr, clash))} has an argument of its own: pass it as "
                f"{clash[0]}=... instead"
            )
        time_range = self.time_range
        if isinstance(time_range, str) and time_range.strip().startswith("{"):
            try:
                time_range = parse_literal(time_range)
            except ValueError:
                pass  # named below by insights_params
        if self.date_preset and time_range:
            raise GraphInputError("give date_preset or time_range, not both")
        if self.fields is None:
            raise GraphInputError("fields is required: the report's fields, e.g. ['ad_id', 'spend']")
        params = {
            "fields": parse_rendered_list(self.fields),
            "level": self.level,
            "date_preset": self.date_preset or None,
            "time_range": time_range or None,
            "time_increment": self.time_increment,
            "breakdowns": parse_rendered_list(self.breakdowns) or None,
            "filtering": parse_rendered_list(self.filtering) or None,
            **extra,
        }
        insights_params(params)  # raises before any call
        return params

    def _output(self) -> StoragePath | None:
        return None if self.output_path is None else storage_path(self.output_path, "output_path")

    def _end_time(self) -> float | None:
        timeout = self.execution_timeout
        return time.time() + timeout.total_seconds() if timeout is not None else None

    # ------------------------------------------------------------------ execution

    def execute(self, context: Context) -> Any:
        """Validate (before any HTTP), start one report run per account, then wait (deferring when
        asked) and deliver the rows: XCom, or JSON Lines with ``output_path``."""
        accounts = self._accounts()
        params = self._report_params()
        self._output()
        hook = self.hook
        self._report_state = ReportRunState.of(context, accounts, params, self.log)
        jobs = self._report_state.load() if self._report_state is not None else None
        if jobs is None:
            jobs = [ReportJob(account) for account in accounts]
        else:  # a later try: settle the runs an earlier try started, as a round would
            jobs = self._settle(hook, *resume_runs(hook, jobs, self.log), params)
        jobs = self._start(hook, jobs, params)
        return self._wait(context, hook, jobs, params, self._end_time())

    def execute_complete(
        self,
        context: Context,
        event: dict[str, Any] | None = None,
        jobs: list[dict[str, Any]] | None = None,
        end_time: float | None = None,
    ) -> Any:
        """Resume after the trigger fired: settle the runs it reports, then go on waiting or deliver."""
        runs = run_event_result(event)
        if jobs is None:  # `airflow dags test` resumes with the event alone: the plan is in XCom
            saved = _pull_plan(context)
            jobs, end_time = saved.get("jobs"), saved.get("end_time")
        plan = jobs_from_json(jobs)
        params = self._report_params()
        hook = self.hook
        self._report_state = ReportRunState.of(context, self._accounts(), params, self.log)
        plan = self._settle(hook, plan, runs, params)
        return self._wait(context, hook, plan, params, end_time)

    def _start(self, hook: GraphHook, jobs: list[ReportJob], params: Mapping[str, Any]) -> list[ReportJob]:
        """Start a run for every job without one (a ``time_range`` job replaces the preset); each
        run id is saved in the task state store as soon as its start answered, before anything else."""
        out = list(jobs)
        for index, job in enumerate(out):
            if job.run_id is None and not job.done:
                job_params = dict(params)
                if job.time_range() is not None:
                    job_params.update(time_range=job.time_range(), date_preset=None)
                out[index] = job = replace(job, run_id=hook.start_insights_report(job.account, job_params))
                self._save(out)
                self.log.info(
                    "insights: started report run %s for act_%s (%s)", job.run_id, job.account, job.range_text
                )
        self._save(out)
        return out

    def _save(self, jobs: list[ReportJob]) -> None:
        if self._report_state is not None:
            self._report_state.save(jobs)

    def _settle(
        self,
        hook: GraphHook,
        jobs: list[ReportJob],
        runs: Mapping[str, Mapping[str, Any]],
        params: Mapping[str, Any],
    ) -> list[ReportJob]:
        """Apply a round's run states (completed / split / started again), then start what needs it."""
        missing = [
            j.run_id for j in jobs if j.run_id and not j.done and j.run_id in runs and not runs[j.run_id]
        ]
        if missing:
            raise InsightsReportError(f"report run(s) not found: {', '.join(map(str, missing[:10]))}")
        can_split = "time_ranges" not in (self.report_params or {})
        jobs, notes = settle(jobs, runs, self.max_job_retries, can_split=can_split)
        for note in notes:
            self.log.warning("insights: %s", note)
        return self._start(hook, jobs, params)

    def _check(self, hook: GraphHook, jobs: list[ReportJob], params: Mapping[str, Any]) -> list[ReportJob]:
        """One round: read the pending runs (50 per call) and settle them; a transient error means
        "not done yet"."""
        pending = [j.run_id for j in jobs if j.run_id and not j.done]
        if not pending:
            return jobs
        try:
            got = hook.get_report_runs(pending, fields=list(RUN_FIELDS))
        except Exception as exc:
            if not is_retryable(exc):
                raise
            self.log.warning(
                "insights: reading report runs failed (%s); waiting on them anyway",
                describe_error(exc, hook.scrub),
            )
            return jobs
        runs = {rid: dict(got.get(rid) or {}) for rid in pending}
        jobs = self._settle(hook, jobs, runs, params)
        done = sum(1 for j in jobs if j.done)
        self.log.info("insights: %d of %d range(s) completed", done, len(jobs))
        return jobs

    def _wait(
        self,
        context: Context,
        hook: GraphHook,
        jobs: list[ReportJob],
        params: Mapping[str, Any],
        end_time: float | None,
    ) -> Any:
        """Check once, then wait on the runs until every range is done: in the triggerer
        (deferrable), or on this worker by running the same trigger on a private event loop (one
        round logic, one finish rule, no polling loop of the operator's own)."""
        jobs = self._check(hook, jobs, params)
        while not all(j.done for j in jobs):
            left = None if end_time is None else end_time - time.time()
            pending = [str(j.run_id) for j in jobs if not j.done]
            if left is not None and left <= 0:
                raise InsightsReportError(f"timed out waiting on report run(s) {', '.join(pending[:10])}")
            trigger = AsyncReportRunTrigger(
                report_run_ids=pending,
                graph_conn_id=self.graph_conn_id,
                api_version=self.api_version,
                poll_interval=float(self.poll_interval),
                end_time=end_time,
            )
            if self.deferrable:
                plan = {"jobs": jobs_to_json(jobs), "end_time": end_time}
                _push_plan(context, plan)
                self.defer(
                    trigger=trigger,
                    method_name="execute_complete",
                    kwargs=plan,
                    timeout=timedelta(seconds=left) if left is not None else None,
                )
            event = asyncio.run(_first_event(trigger))
            jobs = self._settle(hook, jobs, run_event_result(event), params)
        return self._deliver(hook, jobs)

    # ------------------------------------------------------------------ rows

    def _rows(
        self, hook: GraphHook, jobs: list[ReportJob], counts: dict[str, int]
    ) -> Generator[dict[str, Any], None, None]:
        """Every row of every completed run, in job order; ``account_id`` added where Graph left it out."""
        for job in jobs:
            run_id = str(job.run_id)
            counts[run_id] = 0
            for row in hook.iter_report_rows(run_id, page_size=self.page_size):
                counts[run_id] += 1
                yield row if "account_id" in row else {"account_id": job.account, **row}
            self.log.info(
                "insights: run %s (act_%s, %s): %d row(s)",
                run_id,
                job.account,
                job.range_text,
                counts[run_id],
            )

    def _deliver(self, hook: GraphHook, jobs: list[ReportJob]) -> Any:
        output = self._output()
        counts: dict[str, int] = {}
        rows = self._rows(hook, jobs, counts)
        try:
            if output is None:
                return self._collect(hook, rows)
            with JsonlWriter(output, hook.scrub) as writer:
                for row in rows:
                    writer.write(row)
        finally:
            rows.close()
        report_runs = {
            str(j.run_id): {
                "account_id": j.account,
                "async_status": "Job Completed",
                "rows": counts.get(str(j.run_id), 0),
                "date_start": j.date_start,
                "date_stop": j.date_stop,
            }
            for j in jobs
        }
        self.log.info(
            "insights: wrote %d row(s) from %d report run(s) to %s", writer.count, len(jobs), output
        )
        return {"path": str(output), "count": writer.count, "report_runs": report_runs}

    def _collect(self, hook: GraphHook, rows: Iterator[dict[str, Any]]) -> list[dict[str, Any]]:
        """At most ``max_xcom_items`` rows as plain, scrubbed JSON for XCom."""
        limit = self.max_xcom_items
        out = bounded_list(
            rows,
            limit,
            lambda: limit_message(
                "InsightsReportOperator", f"more than {limit}", "rows", limit, "narrow the report"
            ),
        )
        self.log.info("insights: returning %d row(s) through XCom", len(out))
        return list(to_xcom(hook.scrub, out, InsightsReportError))


async def _first_event(trigger: AsyncReportRunTrigger) -> Any:
    """The payload of the trigger's one event (the worker-side wait)."""
    async for event in trigger.run():
        return event.payload
    raise InsightsReportError("the report run trigger ended without an event")


def _push_plan(context: Context, plan: dict[str, Any]) -> None:
    """Keep the plan in XCom too: the deferral's kwargs carry it, except under ``dag.test()`` /
    ``airflow dags test``, which resume a task with the trigger's event alone."""
    ti = context.get("ti")
    if ti is not None:
        ti.xcom_push(key=PLAN_XCOM_KEY, value=plan)


def _pull_plan(context: Context) -> dict[str, Any]:
    ti = context.get("ti")
    saved = None
    if ti is not None:
        map_index = getattr(ti, "map_index", -1)
        saved = ti.xcom_pull(
            task_ids=ti.task_id, key=PLAN_XCOM_KEY, map_indexes=map_index if map_index is not None else -1
        )
    if not isinstance(saved, dict):
        raise InsightsReportError(
            "resumed without the report's plan (no deferral kwargs, no XCom "
            f"{PLAN_XCOM_KEY!r}): cannot tell which report runs to read"
        )
    return saved
