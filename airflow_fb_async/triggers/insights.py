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

``success`` means every run finished (``Job Completed`` at 100 %, ``Job Failed`` or ``Job
Skipped``), or (``return_on_failure``, the default) that at least one run failed or was skipped:
the operator starts it again or splits it at once instead of waiting for the slowest account.
The rules live in :mod:`airflow_fb_async.waiting.report_runs`; this module stays light, because a
triggerer imports it on its event loop: the rest is imported in a worker thread when the trigger runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_fb_async.triggers.base import GraphWaitTrigger
from airflow_fb_async.waiting.ids import normalize_ids

if TYPE_CHECKING:
    from airflow_fb_async.waiting.poller import PollKind
    from airflow_fb_async.waiting.report_runs import RunWait

#: What a running trigger needs beyond this module: imported in a worker thread, not on the loop.
WAIT_MODULE = "airflow_fb_async.waiting.report_runs"


class AsyncReportRunTrigger(GraphWaitTrigger):
    """Wait until insights report runs finish (completed, failed or skipped).

    :param report_run_ids: the report run ids (one id or a list of digit strings).
    :param return_on_failure: fire as soon as one run failed or was skipped (default), so it can be
        started again at once; False waits until every run finished.
    :param common: ``graph_conn_id``, ``api_version``, ``poll_interval``, ``end_time``, as
        :class:`~airflow_fb_async.triggers.base.GraphWaitTrigger` takes them (keywords).
    """

    wait_module = WAIT_MODULE
    waits_on = "insights report run(s)"

    def __init__(
        self,
        report_run_ids: list[str] | str,
        *,
        return_on_failure: bool = True,
        **common: Any,
    ) -> None:
        super().__init__(**common)
        self.report_run_ids = normalize_ids(report_run_ids, "report_run_ids", "report run id")
        self.return_on_failure = bool(return_on_failure)

    @property
    def ids(self) -> list[str]:
        return self.report_run_ids

    def own_args(self) -> dict[str, Any]:
        return {"report_run_ids": list(self.report_run_ids), "return_on_failure": self.return_on_failure}

    def rules(self) -> tuple[PollKind, RunWait]:
        from airflow_fb_async.waiting.report_runs import REPORT_RUN_KIND, RunWait  # loaded: lookups

        return REPORT_RUN_KIND, RunWait(
            self.report_run_ids, self.log, return_on_failure=self.return_on_failure
        )
