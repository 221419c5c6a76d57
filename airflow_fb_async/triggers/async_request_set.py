"""Deferrable waiting on async batch request sets.

:class:`AsyncRequestSetTrigger` joins the shared poller of its event loop
(:mod:`airflow_fb_async.waiting.poller`): every such trigger in the process with the same
connection id and API version is read in the same rounds, ``ceil(K / 50)`` multi-id calls for K
pending sets whatever the number of triggers, with one shared back-off on throttling and transient
errors. Each trigger decides for itself with :class:`~airflow_fb_async.waiting.sets.SetWait` (the
round check, the missing-set and finish rules every waiter uses) and fires exactly one event:

``{"status": "success" | "error" | "timeout", "message": str,
   "request_sets": {set_id: {"total_count", "success_count", "error_count", "canceled_count"}}}``

Light to import (the triggerer imports it on its loop): the waiting machinery and the hook module
are imported in a worker thread when the trigger starts.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from airflow_fb_async._compat import BaseTrigger, TriggerEvent, timeout
from airflow_fb_async.waiting import HOOK_MODULE, import_off_loop
from airflow_fb_async.waiting.ids import normalize_set_ids

if TYPE_CHECKING:
    from airflow_fb_async.waiting.sets import SetWait

#: What a running trigger needs beyond this module: imported in a worker thread, not on the loop.
WAIT_MODULE = "airflow_fb_async.waiting.sets"

if TYPE_CHECKING:
    from collections.abc import AsyncIterator


class AsyncRequestSetTrigger(BaseTrigger):
    """Wait until every given async request set reports ``is_completed``.

    :param request_set_ids: the request set ids (one id or a list; digit strings).
    :param graph_conn_id: the Graph connection.
    :param api_version: Graph API version (default: the connection's).
    :param poll_interval: seconds between reads of this trigger's sets at most (shared rounds may
        read them more often, never less: see :mod:`airflow_fb_async.waiting.poller`).
    :param end_time: absolute unix time after which a ``timeout`` event is fired; None waits forever.
    :param fail_on_request_errors: fire an ``error`` event (naming counts) when any request of the
        completed sets ended in error.
    :param cancel_on_kill: when a user kills the deferred task, cancel the sets not yet completed
        (Airflow's trigger ``on_kill``; not on triggerer restarts or timeouts).
    """

    def __init__(
        self,
        request_set_ids: list[str] | str,
        graph_conn_id: str = "facebook_graph_default",
        api_version: str | None = None,
        poll_interval: float = 30.0,
        end_time: float | None = None,
        fail_on_request_errors: bool = False,
        cancel_on_kill: bool = False,
    ) -> None:
        super().__init__()
        self.request_set_ids = normalize_set_ids(request_set_ids)
        self.graph_conn_id = graph_conn_id
        self.api_version = api_version
        self.poll_interval = float(poll_interval)
        if self.poll_interval < 0:
            raise ValueError("poll_interval must be >= 0")
        self.end_time = float(end_time) if end_time is not None else None
        self.fail_on_request_errors = bool(fail_on_request_errors)
        self.cancel_on_kill = bool(cancel_on_kill)
        self._wait: SetWait | None = None

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "request_set_ids": list(self.request_set_ids),
                "graph_conn_id": self.graph_conn_id,
                "api_version": self.api_version,
                "poll_interval": self.poll_interval,
                "end_time": self.end_time,
                "fail_on_request_errors": self.fail_on_request_errors,
                "cancel_on_kill": self.cancel_on_kill,
            },
        )

    def _time_left(self) -> float | None:
        return None if self.end_time is None else self.end_time - time.time()

    async def run(self) -> AsyncIterator[TriggerEvent]:
        yield TriggerEvent(await self._run_wait())

    async def _run_wait(self) -> dict[str, Any]:
        await import_off_loop(WAIT_MODULE)
        from airflow_fb_async.waiting.poller import shared_poller  # loaded: lookups
        from airflow_fb_async.waiting.sets import REQUEST_SET_KIND, SetWait

        wait = self._wait = SetWait(
            self.request_set_ids, self.log, fail_on_request_errors=self.fail_on_request_errors
        )
        self.log.info(
            "Waiting on %d async request set(s) (poll every %.1fs%s)",
            len(self.request_set_ids),
            self.poll_interval,
            "" if self.end_time is None else f", until unix time {self.end_time:.0f}",
        )
        poller = shared_poller(self.graph_conn_id, self.api_version, REQUEST_SET_KIND)
        async with poller.subscribe(self.request_set_ids, self.poll_interval) as member:
            while True:
                left = self._time_left()
                if left is not None and left <= 0:
                    return wait.timeout_event()
                try:
                    # Not asyncio.wait_for: on 3.11 it swallows a cancellation that lands as the
                    # round arrives, and a cancelled (reassigned) trigger would go on polling.
                    async with timeout(left):
                        got = await member.next_round()
                except TimeoutError:
                    return wait.timeout_event()
                if got.error is not None:
                    if got.retry_in is None:
                        return wait.error_event(got.error, poller.scrub)
                    wait.read_failed(got.error, got.retry_in, poller.scrub)
                    continue
                event = wait.check(got.objects, got.missing)
                if event is not None:
                    return event

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
