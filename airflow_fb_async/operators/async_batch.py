"""Submit asynchronous batch request sets (and optionally wait for them).

The contracted import path of all three request set operators: :class:`SubmitAsyncBatchOperator`
lives here; :class:`UpdateAsyncRequestSetOperator` and :class:`CancelAsyncRequestSetOperator` live
in :mod:`.request_set_admin` and are re-exported.

XComs of the submit operator: ``return_value`` is always the list of request set ids holding the
work; with ``wait_for_completion`` the counts of each set are pushed as well, under the key
``summary``: ``{set_id: {"total_count", "success_count", "error_count", "canceled_count"}}``.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow_fb_async._compat import conf
from airflow_fb_async.exceptions import FacebookGraphError, GraphInputError
from airflow_fb_async.hooks.request_set_plan import MAX_SET_SIZE, SetOptions
from airflow_fb_async.hooks.request_set_reruns import TaskInstanceSubmission, TaskStateStore
from airflow_fb_async.jsonl import storage_path
from airflow_fb_async.literals import parse_rendered_list
from airflow_fb_async.operators._files import exactly_one, file_request_set_plan
from airflow_fb_async.operators._graph_operator import GraphOperator
from airflow_fb_async.operators._xcom import push_xcom
from airflow_fb_async.operators.request_set_admin import (
    CancelAsyncRequestSetOperator as CancelAsyncRequestSetOperator,
)
from airflow_fb_async.operators.request_set_admin import (
    UpdateAsyncRequestSetOperator as UpdateAsyncRequestSetOperator,
)
from airflow_fb_async.waiting.events import event_result
from airflow_fb_async.waiting.sets import SetWait, cancel_sets, settle

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from airflow_fb_async._compat import Context
    from airflow_fb_async.hooks.request_set_plan import RequestSetPlan
    from airflow_fb_async.hooks.request_sets import SubmittedSet

#: task_state_store key holding the submission state of the task instance (set ids per generation).
STATE_KEY = "fb_async_request_set_ids"
#: XCom key of the wait's summary ``{set_id: {counts}}`` (``return_value`` holds the ids).
SUMMARY_KEY = "summary"
IDS_KEY = "request_set_ids"


def task_instance_key(context: Context | Mapping[str, Any]) -> str:
    """A short stable hash of ``dag_id|task_id|run_id|map_index`` identifying the task instance.

    Tries of the same task instance (retries, clears) share it; other task instances, runs and mapped
    indexes get another one.
    """
    ti = context.get("ti") or context.get("task_instance")
    if ti is None:
        raise FacebookGraphError("the task context has no task instance ('ti'): cannot name the request sets")
    run_id = getattr(ti, "run_id", None)
    if run_id is None and context.get("dag_run") is not None:
        run_id = getattr(context["dag_run"], "run_id", None)
    map_index = getattr(ti, "map_index", -1)
    if map_index is None:
        map_index = -1
    raw = f"{ti.dag_id}|{ti.task_id}|{run_id}|{map_index}"
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()[:10]


def _timeout_seconds(timeout: float | timedelta | None) -> float | None:
    """The wait's timeout in seconds (None: no timeout); GraphInputError when not positive."""
    if timeout is None:
        return None
    seconds = timeout.total_seconds() if isinstance(timeout, timedelta) else float(timeout)
    if seconds <= 0:
        raise GraphInputError(f"timeout must be positive, got {timeout!r}")
    return seconds


class SubmitAsyncBatchOperator(GraphOperator):
    """
    Submit requests to an ad account as asynchronous batch request sets, and optionally wait for them.

    The requests are validated before any call and split into request sets of at most
    ``max_set_size`` (Graph allows 1000) without separating ``{result=NAME:...}`` reference chains.
    The submission is keyed by task instance (dag, task, run, map index): each set's name ends with
    the key's marker (``"{name} [part k/n #3f9a1c2b7d4e]"``) and, on Airflow 3.3+, the set ids are
    kept in the task's state store. A retry or rerun of the same task instance therefore finds its
    sets, even if they were renamed or the rendered ``name`` changed, and never creates them twice;
    a create whose answer was lost is looked up, not resent. A rerun whose earlier sets were
    canceled submits again exactly the canceled requests (in new sets named ``"{name} (resubmit
    g)"``), never those that ran, and returns every set that now holds the work. ``requests=[]``
    sends nothing and returns ``[]``. Details and limits: :mod:`airflow_fb_async.hooks.request_set_reruns`.

    File-fed: ``requests_path`` names a JSON Lines file, one request per line (validation errors name
    the line; names unique across the file). Sets of ``max_set_size`` are built as the file is read,
    one set in memory at a time; a reference reaches only requests of its own set, and a chain of
    linked lines spanning at most ``max_set_size`` requests always stays in one set (see
    :mod:`airflow_fb_async.hooks.request_windows`). Exactly once as for a list (keyed by task
    instance); the XCom is the set ids.

    :param ad_account_id: ``act_<digits>`` or ``<digits>``. (templated)
    :param requests: list of ``{"name", "relative_url", "body"}``; ``body`` a URL-encoded string or a
        dict (encoded for you; nested values as JSON). Async batches are POST-only. (templated)
        Exactly one of ``requests`` and ``requests_path``.
    :param requests_path: a JSON Lines file of such requests: local path or ``ObjectStoragePath``
        URL. (templated)
    :param name: base name of the request sets. (templated)
    :param notification_uri: http(s) URL Graph notifies when a set completes. (templated)
    :param notification_mode: ``OFF`` or ``ON_COMPLETE``. (templated)
    :param wait_for_completion: wait until every set is completed; their counts are pushed under the
        XCom key ``summary``.
    :param deferrable: wait in the triggerer instead of a worker slot.
    :param poll_interval: seconds between status checks while waiting.
    :param timeout: give up waiting after this many seconds (or a timedelta); None waits forever.
    :param max_set_size: requests per set, 1..1000.
    :param fail_on_request_errors: when waiting, fail if any request ended in error.
    :param cancel_on_kill: cancel the sets when the task is killed.
    :param graph_conn_id: Graph connection id. (templated)
    :param api_version: Graph API version, default the connection's. (templated)

    :return: the ids of the request sets holding the work (list), always. With
        ``wait_for_completion`` the XCom key ``summary`` holds
        ``{set_id: {"total_count", "success_count", "error_count", "canceled_count"}}``.
    """

    template_fields: Sequence[str] = (
        "ad_account_id",
        "requests",
        "requests_path",
        "name",
        "notification_uri",
        "notification_mode",
        *GraphOperator.template_fields,
    )
    template_fields_renderers = {"requests": "json"}
    ui_color = "#dbe7fb"

    def __init__(
        self,
        *,
        ad_account_id: str,
        requests: list[dict[str, Any]] | str | None = None,
        name: str,
        requests_path: Any = None,
        notification_uri: str | None = None,
        notification_mode: str | None = None,
        wait_for_completion: bool = False,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float = 30,
        timeout: float | timedelta | None = None,
        max_set_size: int = MAX_SET_SIZE,
        fail_on_request_errors: bool = False,
        cancel_on_kill: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        exactly_one(requests, requests_path, "SubmitAsyncBatchOperator")
        self.ad_account_id = ad_account_id
        self.requests = requests
        self.requests_path = requests_path
        self.name = name
        self.notification_uri = notification_uri
        self.notification_mode = notification_mode
        self.wait_for_completion = wait_for_completion
        self.deferrable = deferrable
        self.poll_interval = poll_interval
        self.timeout = timeout
        self.max_set_size = max_set_size
        self.fail_on_request_errors = fail_on_request_errors
        self.cancel_on_kill = cancel_on_kill
        self.request_set_ids: list[str] = []

    def execute(self, context: Context) -> list[str]:
        """Validate (before any HTTP), submit exactly once per task instance, optionally wait; return
        the set ids (the summary of a wait goes to the XCom key ``summary``)."""
        if not isinstance(self.poll_interval, (int, float)) or self.poll_interval <= 0:
            raise GraphInputError(
                f"poll_interval must be a positive number of seconds, got {self.poll_interval!r}"
            )
        timeout = _timeout_seconds(self.timeout)
        key = task_instance_key(context)
        options = SetOptions.validated(
            self.ad_account_id,
            self.name,
            notification_uri=self.notification_uri,
            notification_mode=self.notification_mode,
            max_set_size=self.max_set_size,
            idempotency_key=key,
        )
        if self.requests_path is not None:
            plan = self._file_plan(options)
        else:
            plan = options.plan_requests(parse_rendered_list(self.requests))
        self.request_set_ids = []
        if plan.parts:
            self._submit(context, plan, options)
        else:
            self.log.info("No requests to submit: nothing sent")
        if self.wait_for_completion:
            # The ids go to XCom before the wait, so a wait that fails or times out still names
            # the sets that exist (the return value is pushed only on success).
            push_xcom(context, IDS_KEY, self.request_set_ids)
            summary = self._wait(timeout) if self.request_set_ids else {}
            push_xcom(context, SUMMARY_KEY, summary)
        return self.request_set_ids

    def execute_complete(self, context: Context, event: dict[str, Any]) -> list[str]:
        """Resume after the trigger fired: validate the event (raises on error or timeout), push its
        summary under ``summary`` and return the set ids (the summary's keys, in order)."""
        summary = settle(event, self.fail_on_request_errors, self.log)
        push_xcom(context, SUMMARY_KEY, summary)
        return list(summary)

    def on_kill(self) -> None:
        """With ``cancel_on_kill``, cancel every set this try created or found so far."""
        if self.cancel_on_kill and self.request_set_ids:
            cancel_sets(self.hook.cancel, self.request_set_ids, self.log, self.hook.scrub)

    def _submit(self, context: Context, plan: RequestSetPlan, options: SetOptions) -> None:
        """Make every part of ``plan`` (and any resubmission of canceled requests) exist on Graph
        once; ``request_set_ids`` grows as each set comes to exist, for :meth:`on_kill`."""
        self.log.info(
            "Submitting %d request(s) to %s as %d request set(s) named %r (task instance key %s)",
            plan.total,
            plan.ad_account_id,
            len(plan.parts),
            plan.parts[0].name,
            options.idempotency_key,
        )

        def record(part: SubmittedSet) -> None:
            if part.id not in self.request_set_ids:
                self.request_set_ids.append(part.id)
            self.log.info(
                "Request set %s (%r): %d request(s), %s",
                part.id,
                part.name,
                part.size,
                "created" if part.created else "already existed, reused",
            )

        def resubmission(requests: Any, generation: int) -> RequestSetPlan:
            # Generation g: the canceled requests again, under their own name and key.
            return replace(
                options,
                name=f"{options.name} (resubmit {generation})",
                idempotency_key=f"{options.idempotency_key}|resubmit {generation}",
            ).plan_requests(requests)

        submission = TaskInstanceSubmission(
            self.hook, plan, resubmission, store=TaskStateStore.of(context, STATE_KEY), on_set=record
        ).run()
        self.request_set_ids = submission.set_ids
        if submission.resubmitted:
            self.log.info("Submitted %d canceled request(s) again", submission.resubmitted)
        self.log.info("Request sets holding the work: %s", ", ".join(self.request_set_ids))

    def _wait(self, timeout: float | None) -> dict[str, dict[str, int]]:
        """Wait for every set: one check first (sets already done need no wait), then in the
        triggerer (deferrable: this raises TaskDeferred) or on this worker. Returns the summary."""
        interval = float(self.poll_interval)
        wait = SetWait(self.request_set_ids, self.log, fail_on_request_errors=self.fail_on_request_errors)
        event, _ = wait.try_poll(self.hook, interval)
        if event is not None:
            return event_result(event)
        if self.deferrable:
            from airflow_fb_async.triggers.async_request_set import AsyncRequestSetTrigger

            self.defer(
                trigger=AsyncRequestSetTrigger(
                    request_set_ids=self.request_set_ids,
                    graph_conn_id=self.graph_conn_id,
                    api_version=self.api_version,
                    poll_interval=interval,
                    end_time=time.time() + timeout if timeout is not None else None,
                    fail_on_request_errors=self.fail_on_request_errors,
                    cancel_on_kill=self.cancel_on_kill,
                ),
                method_name="execute_complete",
                timeout=timedelta(seconds=timeout) if timeout is not None else None,
            )
        return wait.wait_sync(self.hook, interval, timeout)

    def _file_plan(self, options: SetOptions) -> RequestSetPlan:
        """Generation 0 from ``requests_path``: validated line by line now, sets read when created."""
        source = storage_path(self.requests_path, "requests_path")
        plan, scan = file_request_set_plan(source, options)
        self.log.info(
            "Requests file %s: %d request(s) in %d set(s), sha256 %s",
            source,
            scan.count,
            len(scan.windows),
            scan.sha256[:16],
        )
        return plan
