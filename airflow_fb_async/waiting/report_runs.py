"""Waiting on insights report runs: what is read, what counts as finished, the events, the rules (``RunWait``).

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

from airflow_fb_async.exceptions import InsightsReportError
from airflow_fb_async.hooks.insights import JOB_FAILED_STATUSES, report_run_done
from airflow_fb_async.waiting.errors import describe_error
from airflow_fb_async.waiting.events import envelope_problems, event_envelope
from airflow_fb_async.waiting.poller import PollKind
from airflow_fb_async.waiting.progress import QUIET_LOG_INTERVAL

if TYPE_CHECKING:
    import logging
    from collections.abc import Callable, Iterable

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
    return event_envelope(status, message, "report_runs", summarize_runs(summary))


def run_event_result(event: Any) -> dict[str, dict[str, Any]]:
    """Validate an event; return its runs on ``success``.

    Raises :class:`InsightsReportError` with the message on ``error`` / ``timeout`` and on anything
    that is not a well-formed event.
    """
    if not isinstance(event, Mapping):
        raise InsightsReportError(f"malformed report run event: expected a dict, got {type(event).__name__}")
    status, message, runs = event.get("status"), event.get("message"), event.get("report_runs")
    problems = envelope_problems(event)
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


class RunWait:
    """The :class:`~airflow_fb_async.waiting.rounds.RoundRules` of a wait on report runs: the latest
    read of each run, progress logged on change, and the events."""

    def __init__(
        self, report_run_ids: list[str], log: logging.Logger | Any, *, return_on_failure: bool
    ) -> None:
        self.latest: dict[str, dict[str, Any]] = {rid: {} for rid in report_run_ids}
        self.log = log
        self.return_on_failure = return_on_failure
        self._said, self._said_at = "", 0.0

    def _event(self, status: str, message: str) -> dict[str, Any]:
        (self.log.info if status == "success" else self.log.error)("%s", message)
        return make_run_event(status, message, self.latest)

    def check(
        self, raw: Mapping[str, Mapping[str, Any]], missing: Iterable[str] = ()
    ) -> dict[str, Any] | None:
        """One round: a run Graph does not know ends the wait; else record, log on change, decide."""
        missing = list(missing)
        if missing:
            return self._event("error", f"report run(s) not found: {', '.join(missing[:10])}")
        self.latest.update({rid: dict(run) for rid, run in raw.items() if rid in self.latest})
        text = describe_runs(summarize_runs(self.latest))
        now = time.monotonic()
        if text != self._said or now - self._said_at >= QUIET_LOG_INTERVAL:  # on change, else now and then
            self.log.info("%s", text)
            self._said, self._said_at = text, now
        runs = self.latest.values()
        if all(run_finished(r) for r in runs) or (
            self.return_on_failure and any(run_failed(r) for r in runs)
        ):
            return make_run_event("success", text, self.latest)
        return None

    def read_failed(self, exc: BaseException, retry_in: float, scrub: Callable[[Any], str] | None) -> None:
        self.log.warning(
            "Reading report runs failed (%s); next read in %.1fs", describe_error(exc, scrub), retry_in
        )

    def error_event(self, exc: BaseException, scrub: Callable[[Any], str] | None = None) -> dict[str, Any]:
        return self._event("error", f"reading report runs failed: {describe_error(exc, scrub)}")

    def timeout_event(self) -> dict[str, Any]:
        return self._event("timeout", f"end time passed; {describe_runs(summarize_runs(self.latest))}")
