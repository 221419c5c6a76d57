"""Which report runs an insights report needs, and what to do when one fails (pure, no I/O).

A report over many accounts is a list of *jobs*: one per (account, date range), each holding the
report run that currently computes it. The plan is plain JSON, so it travels through a deferral
(``next_kwargs``) unchanged::

    start      one job per account, range None (the report's own date_preset / time_range)
    settle     runs read back -> Job Completed at 100 %: the job is done (its rows are read later)
                              Job Failed, range over one day: the job is replaced by its two halves
                              Job Failed (one day) or Job Skipped: started again, at most
                              ``max_job_retries`` times per range, else the report fails
    rows       only the runs of done jobs are read: a failed run's rows are never kept

Halves: ``[since, until]`` of ``n`` days becomes ``[since, since + ceil(n/2) - 1]`` and the rest (the
earlier half takes the extra day), so the halves cover every day of the range exactly once. A job
whose range is None takes the failed run's ``date_start`` / ``date_stop`` (a ``date_preset``
resolved by Graph) before it is split or started again, so a preset that moves at midnight cannot
shift a retried range. Reports with ``time_ranges`` (several ranges in one run) are started again,
never split.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

from airflow_fb_async.exceptions import InsightsReportError
from airflow_fb_async.hooks.insights import JOB_FAILED_STATUSES, report_run_done

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

__all__ = [
    "ReportJob",
    "jobs_from_json",
    "jobs_to_json",
    "settle",
    "split_range",
]

JOB_FAILED = "Job Failed"


@dataclass(frozen=True)
class ReportJob:
    """One (account, date range) of a report and the run that computes it.

    :param account: the ad account, digits only.
    :param since: first day of the range (ISO), or None: the report's own dates.
    :param until: last day of the range (ISO), or None.
    :param retries: how many times this range was started again after a failed or skipped run.
    :param run_id: the current report run, None before it is started.
    :param done: the run ended ``Job Completed`` at 100 %.
    :param date_start: the run's ``date_start`` as Graph reported it (for the summary).
    :param date_stop: the run's ``date_stop``.
    :param history: ``"<run id>:<status>"`` of the earlier runs of this range (or of the range it
        was split from), for the error message when it gives up.
    """

    account: str
    since: str | None = None
    until: str | None = None
    retries: int = 0
    run_id: str | None = None
    done: bool = False
    date_start: str | None = None
    date_stop: str | None = None
    history: tuple[str, ...] = field(default=())

    @property
    def range_text(self) -> str:
        return f"{self.since}..{self.until}" if self.since else "the report's dates"

    def time_range(self) -> dict[str, str] | None:
        """The ``time_range`` parameter of this job's run, None for the report's own dates."""
        return (
            None if self.since is None or self.until is None else {"since": self.since, "until": self.until}
        )


def jobs_to_json(jobs: Iterable[ReportJob]) -> list[dict[str, Any]]:
    """Plain JSON for ``next_kwargs``."""
    return [{**asdict(job), "history": list(job.history)} for job in jobs]


def jobs_from_json(value: Any) -> list[ReportJob]:
    """Jobs back from :func:`jobs_to_json` (a :class:`InsightsReportError` when malformed)."""
    if not isinstance(value, list):
        raise InsightsReportError(
            f"malformed insights plan: expected a list of jobs, got {type(value).__name__}"
        )
    jobs = []
    for index, item in enumerate(value):
        try:
            jobs.append(ReportJob(**{**item, "history": tuple(item.get("history") or ())}))
        except (TypeError, AttributeError):
            raise InsightsReportError(f"malformed insights plan: job {index} is {item!r}") from None
    return jobs


def split_range(since: str, until: str) -> tuple[tuple[str, str], tuple[str, str]]:
    """Two halves of a range of at least two days; the earlier half takes the extra day."""
    first, last = dt.date.fromisoformat(since), dt.date.fromisoformat(until)
    days = (last - first).days + 1
    if days < 2:
        raise ValueError(f"cannot split a range of {days} day(s): {since}..{until}")
    end_first = first + dt.timedelta(days=(days + 1) // 2 - 1)
    return (since, end_first.isoformat()), ((end_first + dt.timedelta(days=1)).isoformat(), until)


def _iso_day(value: Any) -> str | None:
    try:
        return dt.date.fromisoformat(str(value)).isoformat() if value else None
    except ValueError:
        return None


def _resolved(job: ReportJob, run: Mapping[str, Any]) -> ReportJob:
    """The job with its range fixed to the failed run's dates when it had none."""
    if job.since is not None:
        return job
    since, until = _iso_day(run.get("date_start")), _iso_day(run.get("date_stop"))
    if since is None or until is None or since > until:
        return job
    return replace(job, since=since, until=until)


def settle(
    jobs: list[ReportJob],
    runs: Mapping[str, Mapping[str, Any]],
    max_job_retries: int,
    *,
    can_split: bool = True,
) -> tuple[list[ReportJob], list[str]]:
    """Apply the runs' states to the jobs: ``(new jobs, log lines)``.

    Jobs whose run is still going, or absent from ``runs``, stay as they are. A job whose run failed
    or was skipped comes back with ``run_id=None`` (to start again), or as its two halves.
    Raises :class:`InsightsReportError` when a range failed more than ``max_job_retries`` times.
    """
    out: list[ReportJob] = []
    notes: list[str] = []
    for job in jobs:
        run = runs.get(job.run_id) if job.run_id and not job.done else None
        if run is None:
            out.append(job)
            continue
        status = str(run.get("async_status"))
        if report_run_done(run):
            out.append(
                replace(
                    job,
                    done=True,
                    date_start=_iso_day(run.get("date_start")),
                    date_stop=_iso_day(run.get("date_stop")),
                )
            )
            continue
        if status not in JOB_FAILED_STATUSES:
            out.append(job)
            continue
        job = _resolved(job, run)
        history = (*job.history, f"{job.run_id}:{status}")
        if can_split and status == JOB_FAILED and job.since and job.until and job.since < job.until:
            (a_since, a_until), (b_since, b_until) = split_range(job.since, job.until)
            notes.append(
                f"act_{job.account} {job.range_text}: run {job.run_id} ended {status}; split into "
                f"{a_since}..{a_until} and {b_since}..{b_until}"
            )
            out.append(ReportJob(job.account, a_since, a_until, history=history))
            out.append(ReportJob(job.account, b_since, b_until, history=history))
            continue
        if job.retries >= max_job_retries:
            raise InsightsReportError(
                f"insights report for act_{job.account} ({job.range_text}) failed: run {job.run_id} "
                f"ended {status} after {job.retries} restart(s) (max_job_retries={max_job_retries}); "
                f"runs: {', '.join(history)}"
            )
        notes.append(
            f"act_{job.account} {job.range_text}: run {job.run_id} ended {status}; starting it again "
            f"(restart {job.retries + 1} of {max_job_retries})"
        )
        out.append(replace(job, retries=job.retries + 1, run_id=None, history=history))
    return out, notes
