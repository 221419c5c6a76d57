"""Deferrable waiting on async batch request sets.

:class:`AsyncRequestSetTrigger` joins the shared poller of its event loop
(:mod:`airflow_fb_async.waiting.poller`): every such trigger in the process with the same
connection id and API version is read in the same rounds, ``ceil(K / 50)`` multi-id calls for K
pending sets whatever the number of triggers, with one shared back-off on throttling and transient
errors. Each trigger decides for itself with :class:`~airflow_fb_async.waiting.sets.SetWait` (the
round check, the missing-set and finish rules every waiter uses) in the round loop every trigger of
this package shares (:class:`~airflow_fb_async.triggers.base.GraphWaitTrigger`,
:func:`~airflow_fb_async.waiting.rounds.wait_rounds`) and fires exactly one event:

``{"status": "success" | "error" | "timeout", "message": str,
   "request_sets": {set_id: {"total_count", "success_count", "error_count", "canceled_count"}}}``

Light to import (the triggerer imports it on its loop): the waiting machinery and the hook module
are imported in a worker thread when the trigger starts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_fb_async.triggers.base import GraphWaitTrigger
from airflow_fb_async.waiting import HOOK_MODULE, import_off_loop
from airflow_fb_async.waiting.ids import normalize_set_ids

if TYPE_CHECKING:
    from airflow_fb_async.waiting.poller import PollKind
    from airflow_fb_async.waiting.sets import SetWait

#: What a running trigger needs beyond this module: imported in a worker thread, not on the loop.
WAIT_MODULE = "airflow_fb_async.waiting.sets"


class AsyncRequestSetTrigger(GraphWaitTrigger):
    """Wait until every given async request set reports ``is_completed``.

    :param request_set_ids: the request set ids (one id or a list; digit strings).
    :param fail_on_request_errors: fire an ``error`` event (naming counts) when any request of the
        completed sets ended in error.
    :param cancel_on_kill: when a user kills the deferred task, cancel the sets not yet completed
        (Airflow's trigger ``on_kill``; not on triggerer restarts or timeouts).
    :param common: ``graph_conn_id``, ``api_version``, ``poll_interval``, ``end_time``, as
        :class:`~airflow_fb_async.triggers.base.GraphWaitTrigger` takes them (keywords).
    """

    wait_module = WAIT_MODULE
    waits_on = "async request set(s)"

    def __init__(
        self,
        request_set_ids: list[str] | str,
        *,
        fail_on_request_errors: bool = False,
        cancel_on_kill: bool = False,
        **common: Any,
    ) -> None:
        super().__init__(**common)
        self.request_set_ids = normalize_set_ids(request_set_ids)
        self.fail_on_request_errors = bool(fail_on_request_errors)
        self.cancel_on_kill = bool(cancel_on_kill)
        self._wait: SetWait | None = None

    @property
    def ids(self) -> list[str]:
        return self.request_set_ids

    def own_args(self) -> dict[str, Any]:
        return {
            "request_set_ids": list(self.request_set_ids),
            "fail_on_request_errors": self.fail_on_request_errors,
            "cancel_on_kill": self.cancel_on_kill,
        }

    def rules(self) -> tuple[PollKind, SetWait]:
        from airflow_fb_async.waiting.sets import REQUEST_SET_KIND, SetWait  # loaded: lookups

        self._wait = SetWait(
            self.request_set_ids, self.log, fail_on_request_errors=self.fail_on_request_errors
        )
        return REQUEST_SET_KIND, self._wait

    async def on_kill(self) -> None:
        """Cancel the sets not yet completed when a user kills the task (``cancel_on_kill``)."""
        if not self.cancel_on_kill:
            return
        pending = self._wait.pending if self._wait is not None else list(self.request_set_ids)
        if not pending:
            return
        await import_off_loop(HOOK_MODULE, WAIT_MODULE)
        from airflow_fb_async.hooks.graph import GraphAsyncHook  # loaded: lookups
        from airflow_fb_async.waiting.sets import acancel_sets

        async with GraphAsyncHook(graph_conn_id=self.graph_conn_id, api_version=self.api_version) as ahook:
            await acancel_sets(ahook.cancel, pending, self.log, ahook.scrub)
