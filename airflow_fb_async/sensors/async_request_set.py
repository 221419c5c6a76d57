"""Sensor waiting on async batch request sets (poke, reschedule or deferrable)."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow_fb_async._compat import BaseSensorOperator, PokeReturnValue, conf
from airflow_fb_async.exceptions import AsyncRequestSetError
from airflow_fb_async.literals import is_empty_list
from airflow_fb_async.triggers.async_request_set import (
    SET_FIELDS,
    AsyncRequestSetTrigger,
    ProgressTracker,
    describe_error,
    describe_totals,
    event_result,
    is_retryable,
    normalize_set_ids,
    request_errors_message,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow_fb_async._compat import Context


class AsyncRequestSetSensor(BaseSensorOperator):
    """Wait until every given async request set reports ``is_completed``.

    Reads the sets 50 at a time with Graph's multi-id read, on every poke (poke/reschedule mode) or
    in the triggerer (``deferrable=True``). Returns (XCom)
    ``{set_id: {"total_count", "success_count", "error_count", "canceled_count"}}``.

    :param request_set_ids: one id, a list of ids, or a rendered JSON/Python/comma list; the XCom of
        ``SubmitAsyncBatchOperator`` works as is. (templated)
    :param deferrable: wait in the triggerer (default: ``[operators] default_deferrable``).
    :param fail_on_request_errors: fail, naming counts, when any request ended in error.
    :param cancel_on_kill: cancel the sets not yet completed when the task is killed.
    :param graph_conn_id: the Graph connection. (templated)
    :param api_version: Graph API version, default the connection's. (templated)
    :param poke_interval: seconds between polls (also the trigger's poll interval).
    """

    template_fields: Sequence[str] = ("request_set_ids", "graph_conn_id", "api_version")
    ui_color = "#e7f0fd"

    def __init__(
        self,
        *,
        request_set_ids: Any,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poke_interval: float | timedelta = 60,
        fail_on_request_errors: bool = False,
        cancel_on_kill: bool = False,
        graph_conn_id: str = "facebook_graph_default",
        api_version: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(poke_interval=poke_interval, **kwargs)
        self.request_set_ids = request_set_ids
        self.deferrable = deferrable
        self.fail_on_request_errors = fail_on_request_errors
        self.cancel_on_kill = cancel_on_kill
        self.graph_conn_id = graph_conn_id
        self.api_version = api_version
        if _is_literal(request_set_ids) and not is_empty_list(request_set_ids):
            normalize_set_ids(request_set_ids)  # fail at parse time on a literal bad id
        self._tracker: ProgressTracker | None = None

    # -- helpers ---------------------------------------------------------------------------------

    def _ids(self) -> list[str]:
        """The set ids to wait for; ``[]`` (a submit that had nothing to do) is accepted as is."""
        return [] if is_empty_list(self.request_set_ids) else normalize_set_ids(self.request_set_ids)

    def _hook(self) -> Any:
        from airflow_fb_async.hooks.graph import GraphHook

        return GraphHook(graph_conn_id=self.graph_conn_id, api_version=self.api_version)

    def _read(self, hook: Any, ids: list[str]) -> dict[str, dict[str, Any]]:
        got = hook.get_request_sets(ids, fields=list(SET_FIELDS)) or {}  # 50 ids per call
        raw = {str(k): dict(v) for k, v in got.items() if isinstance(v, dict)}
        missing = [sid for sid in ids if sid not in raw]
        if missing:
            raise AsyncRequestSetError(f"request set(s) not found: {', '.join(missing[:10])}")
        return raw

    def _check(self, tracker: ProgressTracker, hook: Any) -> bool:
        """One round: read the pending sets, log progress; True when every set is completed."""
        newly = tracker.update(self._read(hook, tracker.pending))
        for line in tracker.lines(newly):
            self.log.info("%s", line)
        return not tracker.pending

    def _try_check(self, tracker: ProgressTracker, hook: Any, failed: str, then: str) -> bool:
        """:meth:`_check`, where a retryable read error is logged (``failed``, ``then``) and means "not done"."""
        try:
            return self._check(tracker, hook)
        except AsyncRequestSetError:
            raise
        except Exception as exc:
            if not is_retryable(exc):
                raise
            self.log.warning("%s (%s); %s", failed, describe_error(exc, getattr(hook, "scrub", None)), then)
            return False

    def _finish(self, summary: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
        if self.fail_on_request_errors:
            problem = request_errors_message(summary)
            if problem:
                raise AsyncRequestSetError(problem)
        self.log.info("All request sets completed: %s", describe_totals(summary))
        return summary

    def _get_tracker(self) -> ProgressTracker:
        ids = self._ids()
        if self._tracker is None or self._tracker.set_ids != ids:
            self._tracker = ProgressTracker(ids)
        return self._tracker

    # -- execution -------------------------------------------------------------------------------

    def execute(self, context: Context) -> Any:
        tracker = self._get_tracker()
        if not tracker.set_ids:
            self.log.info("No request sets to wait for (an empty list): done")
            return {}
        if not self.deferrable:
            return super().execute(context)
        if self._try_check(tracker, self._hook(), "First check failed", "deferring anyway"):
            return self._finish(tracker.summary())
        self.defer(
            trigger=AsyncRequestSetTrigger(
                request_set_ids=tracker.set_ids,
                graph_conn_id=self.graph_conn_id,
                api_version=self.api_version,
                poll_interval=self.poke_interval,
                end_time=time.time() + self.timeout,
                fail_on_request_errors=self.fail_on_request_errors,
                cancel_on_kill=self.cancel_on_kill,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout),
        )

    def poke(self, context: Context) -> PokeReturnValue:
        tracker = self._get_tracker()
        if not self._try_check(
            tracker, self._hook(), "Reading request sets failed", "trying again at the next poke"
        ):
            return PokeReturnValue(is_done=False)
        return PokeReturnValue(is_done=True, xcom_value=self._finish(tracker.summary()))

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> Any:
        return self._finish(event_result(event))

    def on_kill(self) -> None:
        if not self.cancel_on_kill:
            return
        tracker = self._tracker
        try:
            pending = tracker.pending if tracker is not None else self._ids()
        except Exception:
            return
        if not pending:
            return
        self.log.warning("Task killed: canceling %d request set(s)", len(pending))
        hook = self._hook()
        for set_id in pending:
            try:
                hook.cancel(set_id)
            except Exception as exc:
                self.log.warning(
                    "Canceling request set %s failed: %s",
                    set_id,
                    describe_error(exc, getattr(hook, "scrub", None)),
                )


def _is_literal(value: Any) -> bool:
    """True for a value that is final at DAG-parse time (no template, no XComArg)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    if isinstance(value, str):
        return "{{" not in value and "{%" not in value
    if isinstance(value, (list, tuple)):
        return all(_is_literal(v) for v in value)
    return False
