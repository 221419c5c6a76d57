"""Sensor waiting on async batch request sets (poke, reschedule or deferrable)."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow_fb_async._compat import BaseSensorOperator, PokeReturnValue, conf
from airflow_fb_async.literals import is_empty_list
from airflow_fb_async.triggers.async_request_set import AsyncRequestSetTrigger
from airflow_fb_async.waiting.events import event_result
from airflow_fb_async.waiting.ids import normalize_set_ids
from airflow_fb_async.waiting.sets import SetWait, cancel_sets, settle

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
        self._wait: SetWait | None = None

    # -- helpers ---------------------------------------------------------------------------------

    def _ids(self) -> list[str]:
        """The set ids to wait for; ``[]`` (a submit that had nothing to do) is accepted as is."""
        return [] if is_empty_list(self.request_set_ids) else normalize_set_ids(self.request_set_ids)

    def _hook(self) -> Any:
        from airflow_fb_async.hooks.graph import GraphHook

        return GraphHook(graph_conn_id=self.graph_conn_id, api_version=self.api_version)

    def _get_wait(self) -> SetWait:
        """The wait's state, kept across pokes of one try (poke mode) so progress is logged on change."""
        ids = self._ids()
        if self._wait is None or self._wait.set_ids != ids:
            self._wait = SetWait(ids, self.log, fail_on_request_errors=self.fail_on_request_errors)
        return self._wait

    # -- execution -------------------------------------------------------------------------------

    def execute(self, context: Context) -> Any:
        """Check once; return the summary if already done, else poke or defer to the trigger."""
        wait = self._get_wait()
        if not wait.set_ids:
            self.log.info("No request sets to wait for (an empty list): done")
            return {}
        if not self.deferrable:
            return super().execute(context)
        event, _ = wait.try_poll(self._hook(), float(self.poke_interval))
        if event is not None:  # already done (or failed): no deferral
            return event_result(event)
        self.defer(
            trigger=AsyncRequestSetTrigger(
                request_set_ids=wait.set_ids,
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
        """One round of :class:`SetWait` (a retryable read error means "not done yet")."""
        event, _ = self._get_wait().try_poll(self._hook(), float(self.poke_interval))
        if event is None:
            return PokeReturnValue(is_done=False)
        return PokeReturnValue(is_done=True, xcom_value=event_result(event))

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> Any:
        """Resume after the trigger fired: the summary, or AsyncRequestSetError on error/timeout."""
        return settle(event, self.fail_on_request_errors, self.log)

    def on_kill(self) -> None:
        """With ``cancel_on_kill``, cancel the sets not yet completed (best effort)."""
        if not self.cancel_on_kill:
            return
        try:
            pending = self._wait.pending if self._wait is not None else self._ids()
        except Exception:
            return
        if pending:
            hook = self._hook()
            cancel_sets(hook.cancel, pending, self.log, hook.scrub)


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
