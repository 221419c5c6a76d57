"""Deferrable waiting on insights report runs (``AdReportRun``).

:class:`AsyncReportRunTrigger` waits on the shared poller (:mod:`airflow_fb_async.waiting.poller`):
every report-run trigger of a loop that shares a connection and API version is read in the same
rounds, 50 runs per multi-id call (``GET /?ids=...``, fields ``async_status``,
``async_percent_completion``, ``account_id`` and the dates), finished runs are not read again, and
throttling and transient errors are ridden out with one shared back-off. Each trigger fires
exactly one event, in the vocabulary of every waiter of this package::

    {"status": "success" | "error" | "timeout", "message": str,
     "report_runs": {report_run_id: {"account_id", "async_status", "async_percent_completion",
                                     "date_start", "date_stop"}}}

A run is *finished* when it ended ``Job Completed`` at 100 %, ``Job Failed`` or ``Job Skipped``.
``success`` means every run finished, or (``return_on_failure``, the default) that at least one
run failed or was skipped: the operator starts it again or splits it at once instead of waiting
for the slowest account. Which runs failed is in the payload; deciding what to do is the
operator's job (:mod:`airflow_fb_async.hooks.insights_plan`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_fb_async.exceptions import InsightsReportError
from airflow_fb_async.hooks.insights import JOB_FAILED_STATUSES, report_run_done
from airflow_fb_async.triggers.async_request_set import EVENT_STATUSES, describe_error, normalize_ids
from airflow_fb_async.waiting.poller import PollKind, shared_poller

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


#: What the shared poller reads for report runs, and when a run needs no more reads.
REPORT_RUN_KIND = PollKind(name="report_run", fields=RUN_FIELDS, is_finished=run_finished)


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


class AsyncReportRunTrigger(BaseTrigger):
    """Wait until insights report runs finish (completed, failed or skipped).

    :param report_run_ids: the report run ids (one id or a list of digit strings).
    :param graph_conn_id: the Graph connection.
    :param api_version: Graph API version (default: the connection's).
    :param poll_interval: seconds between polls.
    :param end_time: absolute unix time after which a ``timeout`` event fires; None waits forever.
    :param return_on_failure: fire as soon as one run failed or was skipped (default), so it can be
        started again at once; False waits until every run finished.
    """

    def __init__(
        self,
        report_run_ids: list[str] | str,
        graph_conn_id: str = "facebook_graph_default",
        api_version: str | None = None,
        poll_interval: float = 30.0,
        end_time: float | None = None,
        return_on_failure: bool = True,
    ) -> None:
        super().__init__()
        self.report_run_ids = normalize_ids(report_run_ids, "report_run_ids", "report run id")
        self.graph_conn_id = graph_conn_id
        self.api_version = api_version
        self.poll_interval = float(poll_interval)
        if self.poll_interval < 0:
            raise ValueError("poll_interval must be >= 0")
        self.end_time = float(end_time) if end_time is not None else None
        self.return_on_failure = bool(return_on_failure)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "report_run_ids": list(self.report_run_ids),
                "graph_conn_id": self.graph_conn_id,
                "api_version": self.api_version,
                "poll_interval": self.poll_interval,
                "end_time": self.end_time,
                "return_on_failure": self.return_on_failure,
            },
        )

    def _time_left(self) -> float | None:
        return None if self.end_time is None else self.end_time - time.time()

    async def run(self) -> AsyncIterator[TriggerEvent]:
        yield TriggerEvent(await self._wait())

    async def _wait(self) -> dict[str, Any]:
        latest: dict[str, dict[str, Any]] = {rid: {} for rid in self.report_run_ids}
        self.log.info(
            "Waiting on %d insights report run(s) (poll every %.1fs)", len(latest), self.poll_interval
        )
        left = self._time_left()
        if left is not None and left <= 0:
            return self._timeout(latest)
        poller = shared_poller(self.graph_conn_id, self.api_version, REPORT_RUN_KIND)
        said = ""
        async with poller.subscribe(self.report_run_ids, interval=self.poll_interval) as sub:
            while True:
                try:
                    got = await asyncio.wait_for(sub.next_round(), self._time_left())
                except TimeoutError:
                    return self._timeout(latest)
                if got.final_error is not None:
                    return self._error(
                        latest, f"reading report runs failed: {describe_error(got.final_error)}"
                    )
                if got.error is not None:
                    self.log.warning(
                        "Reading report runs failed (%s); attempt %d, next in %.1fs",
                        describe_error(got.error),
                        got.attempt,
                        got.retry_in or 0.0,
                    )
                    continue
                if got.missing:
                    return self._error(latest, f"report run(s) not found: {', '.join(got.missing[:10])}")
                latest.update({rid: dict(run) for rid, run in got.objects.items() if rid in latest})
                text = describe_runs(summarize_runs(latest))
                if text != said:  # progress lines only when something moved
                    self.log.info("%s", text)
                    said = text
                if all(run_finished(r) for r in latest.values()) or (
                    self.return_on_failure and any(run_failed(r) for r in latest.values())
                ):
                    return make_run_event("success", text, latest)

    def _timeout(self, latest: dict[str, dict[str, Any]]) -> dict[str, Any]:
        message = f"end time passed; {describe_runs(summarize_runs(latest))}"
        self.log.error("Timeout: %s", message)
        return make_run_event("timeout", message, latest)

    def _error(self, latest: dict[str, dict[str, Any]], message: str) -> dict[str, Any]:
        self.log.error("%s", message)
        return make_run_event("error", message, latest)
