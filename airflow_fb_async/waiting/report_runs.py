"""Waiting on insights report runs: what is read, what counts as finished, the events, the wait.

The report-run counterpart of :mod:`~airflow_fb_async.waiting.sets`, used by
:class:`~airflow_fb_async.triggers.insights.AsyncReportRunTrigger` (in the triggerer) and by
``InsightsReportOperator`` (which runs that trigger on its worker when not deferrable, and reads
its events in ``execute_complete``). Runs are read by the shared poller
(:mod:`~airflow_fb_async.waiting.poller`, kind ``report_run``), 50 per multi-id call.

A run is *finished* when it ended ``Job Completed`` at 100 %, ``Job Failed`` or ``Job Skipped``.
The wait ends when every run finished or, with ``return_on_failure``, as soon as one failed or was
skipped, with one event in the vocabulary of every waiter::

    {"status": "success" | "error" | "timeout", "message": str,
     "report_runs": {report_run_id: {"account_id", "async_status", "async_percent_completion",
                                     "date_start", "date_stop"}}}

Deciding what to do with a failed run is the operator's (:mod:`airflow_fb_async.hooks.insights_plan`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from airflow_fb_async._compat import timeout
from airflow_fb_async.exceptions import InsightsReportError
from airflow_fb_async.hooks.insights import JOB_FAILED_STATUSES, report_run_done
from airflow_fb_async.waiting.errors import describe_error
from airflow_fb_async.waiting.events import EVENT_STATUSES
from airflow_fb_async.waiting.poller import PollKind, shared_poller
from airflow_fb_async.waiting.progress import QUIET_LOG_INTERVAL

if TYPE_CHECKING:
    import logging

#: Fields read on every poll (and kept in events).
RUN_FIELDS = ("id", "account_id", "async_status", "async_percent_completion", "date_start", "date_stop")
#: What an event keeps of each run.
RUN_SUMMARY_FIELDS = RUN_FIELDS[1:]


def run_finished(run: Mapping[str, Any]) -> bool:
    """True when a report run will not change any more: completed at 100 %, failed or skipped."""
    return report_run_done(run) or run.get("async_status") in JOB_FAILED_STATUSES


def run_failed(run: Mapping[str, Any]) -> bool:
    """True when a report run ended ``Job Failed`` or ``Job Skipped``."""
    return run.get("async_status") in JOB_FAILED_STATUSES


def summarize_runs(raw: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """``{run_id: raw run}`` -> ``{run_id: {account_id, async_status, async_percent_completion,
    date_start, date_stop}}`` (plain JSON: strings, the percent an int)."""
    out: dict[str, dict[str, Any]] = {}
    for run_id, run in raw.items():
        item: dict[str, Any] = {}
        for key in RUN_SUMMARY_FIELDS:
            value = (run or {}).get(key)
            if key == "async_percent_completion":
                try:
                    item[key] = int(float(value or 0))
                except (TypeError, ValueError):
                    item[key] = 0
            else:
                item[key] = None if value is None else str(value)
        out[str(run_id)] = item
    return out


def describe_runs(summary: Mapping[str, Mapping[str, Any]]) -> str:
    """``"3 report run(s): 1 completed, 1 failed or skipped, 1 running"``."""
    done = sum(1 for r in summary.values() if report_run_done(r))
    failed = sum(1 for r in summary.values() if run_failed(r))
    return (
        f"{len(summary)} report run(s): {done} completed, {failed} failed or skipped, "
        f"{len(summary) - done - failed} running"
    )


def make_run_event(status: str, message: str, summary: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """An event payload (the only shape this trigger emits)."""
    if status not in EVENT_STATUSES:
        raise ValueError(f"unknown event status {status!r}")
    return {"status": status, "message": str(message), "report_runs": summarize_runs(summary)}


def run_event_result(event: Any) -> dict[str, dict[str, Any]]:
    """Validate an event; return its runs on ``success``.

    Raises :class:`InsightsReportError` with the message on ``error`` / ``timeout`` and on anything
    that is not a well-formed event.
    """
    if not isinstance(event, Mapping):
        raise InsightsReportError(f"malformed report run event: expected a dict, got {type(event).__name__}")
    status, message, runs = event.get("status"), event.get("message"), event.get("report_runs")
    problems = []
    if status not in EVENT_STATUSES:
        problems.append(f"status {status!r} is not one of {', '.join(EVENT_STATUSES)}")
    if not isinstance(message, str):
        problems.append("message is missing or not a string")
    if not isinstance(runs, Mapping) or not all(isinstance(r, Mapping) for r in runs.values()):
        problems.append("report_runs is missing or not a dict of dicts")
    if problems:
        raise InsightsReportError("malformed report run event: " + "; ".join(problems))
    assert isinstance(runs, Mapping)
    if status != "success":
        label = "timed out" if status == "timeout" else "failed"
        raise InsightsReportError(f"Waiting on insights report runs {label}: {message}")
    return {str(k): dict(v) for k, v in runs.items()}


#: What the shared poller reads for report runs, and when a run needs no more reads.
REPORT_RUN_KIND = PollKind(name="report_run", fields=RUN_FIELDS, is_finished=run_finished)


async def wait_report_runs(
    report_run_ids: list[str],
    log: logging.Logger | Any,
    *,
    graph_conn_id: str,
    api_version: str | None,
    poll_interval: float,
    end_time: float | None,
    return_on_failure: bool = True,
) -> dict[str, Any]:
    """Wait on the runs through the loop's shared poller; the event payload (never raises for Graph
    errors: a final read error is an ``error`` event, a passed ``end_time`` a ``timeout`` one)."""
    latest: dict[str, dict[str, Any]] = {rid: {} for rid in report_run_ids}

    def event(status: str, message: str) -> dict[str, Any]:
        (log.info if status == "success" else log.error)("%s", message)
        return make_run_event(status, message, latest)

    said, said_at = "", 0.0
    poller = shared_poller(graph_conn_id, api_version, REPORT_RUN_KIND)
    async with poller.subscribe(report_run_ids, poll_interval) as member:
        while True:
            left = None if end_time is None else end_time - time.time()
            if left is not None and left <= 0:
                return event("timeout", f"end time passed; {describe_runs(summarize_runs(latest))}")
            try:
                # asyncio.timeout, not wait_for: a cancellation landing with the round is not swallowed.
                async with timeout(left):
                    got = await member.next_round()
            except TimeoutError:
                return event("timeout", f"end time passed; {describe_runs(summarize_runs(latest))}")
            if got.error is not None:
                text = describe_error(got.error, poller.scrub)
                if got.retry_in is None:
                    return event("error", f"reading report runs failed: {text}")
                log.warning("Reading report runs failed (%s); next read in %.1fs", text, got.retry_in)
                continue
            if got.missing:
                return event("error", f"report run(s) not found: {', '.join(got.missing[:10])}")
            latest.update({rid: dict(run) for rid, run in got.objects.items() if rid in latest})
            text = describe_runs(summarize_runs(latest))
            now = time.monotonic()
            if text != said or now - said_at >= QUIET_LOG_INTERVAL:  # on change, else now and then
                log.info("%s", text)
                said, said_at = text, now
            if all(run_finished(r) for r in latest.values()) or (
                return_on_failure and any(run_failed(r) for r in latest.values())
            ):
                return make_run_event("success", text, latest)
