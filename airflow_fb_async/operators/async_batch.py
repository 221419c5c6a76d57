"""Operators for asynchronous batch request sets: submit (and optionally wait), update, cancel."""

from __future__ import annotations

import hashlib
import time
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow_fb_async._compat import BaseOperator, conf
from airflow_fb_async.exceptions import (
    FacebookGraphError,
    GraphAPIError,
    GraphInputError,
)
from airflow_fb_async.hooks.request_set_reruns import TaskInstanceSubmission, TaskStateStore
from airflow_fb_async.hooks.request_sets import (
    MAX_SET_SIZE,
    SubmittedSet,
    plan_request_sets,
    validate_notification_mode,
    validate_notification_uri,
    validate_set_name,
)
from airflow_fb_async.hooks.set_fields import SET_COUNT_FIELDS
from airflow_fb_async.hooks.statuses import AsyncRequestStatus, set_count, set_is_completed
from airflow_fb_async.jsonl import storage_path
from airflow_fb_async.literals import parse_rendered_list
from airflow_fb_async.operators._files import exactly_one, file_request_set_plan
from airflow_fb_async.waiting.events import SET_FIELDS, event_result
from airflow_fb_async.waiting.ids import normalize_ids
from airflow_fb_async.waiting.sets import SetWait, cancel_sets, settle

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from airflow_fb_async._compat import Context
    from airflow_fb_async.hooks.graph import GraphHook
    from airflow_fb_async.hooks.request_set_plan import RequestSetPlan

#: task_state_store key holding the submission state of the task instance (set ids per generation).
STATE_KEY = "fb_async_request_set_ids"


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
    if timeout is None:
        return None
    seconds = timeout.total_seconds() if isinstance(timeout, timedelta) else float(timeout)
    if seconds <= 0:
        raise GraphInputError(f"timeout must be positive, got {timeout!r}")
    return seconds


class _GraphOperatorMixin:
    graph_conn_id: str
    api_version: str | None

    @cached_property
    def hook(self) -> GraphHook:
        """The sync Graph hook for this operator's connection."""
        from airflow_fb_async.hooks.graph import GraphHook

        return GraphHook(graph_conn_id=self.graph_conn_id, api_version=self.api_version)


class SubmitAsyncBatchOperator(_GraphOperatorMixin, BaseOperator):
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
    :param wait_for_completion: wait until every set is completed and return their counts.
    :param deferrable: wait in the triggerer instead of a worker slot.
    :param poll_interval: seconds between status checks while waiting.
    :param timeout: give up waiting after this many seconds (or a timedelta); None waits forever.
    :param max_set_size: requests per set, 1..1000.
    :param fail_on_request_errors: when waiting, fail if any request ended in error.
    :param cancel_on_kill: cancel the sets when the task is killed.
    :param graph_conn_id: Graph connection id. (templated)
    :param api_version: Graph API version, default the connection's. (templated)

    :return: the ids of the request sets holding the work (list), or with ``wait_for_completion`` the summary
        ``{set_id: {"total_count", "success_count", "error_count", "canceled_count"}}`` (the ids are
        then also pushed under the XCom key ``request_set_ids``).
    """

    template_fields: Sequence[str] = (
        "ad_account_id",
        "requests",
        "requests_path",
        "name",
        "notification_uri",
        "notification_mode",
        "graph_conn_id",
        "api_version",
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
        graph_conn_id: str = "facebook_graph_default",
        api_version: str | None = None,
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
        self.graph_conn_id = graph_conn_id
        self.api_version = api_version
        self.request_set_ids: list[str] = []

    def execute(self, context: Context) -> Any:
        if not isinstance(self.poll_interval, (int, float)) or self.poll_interval <= 0:
            raise GraphInputError(
                f"poll_interval must be a positive number of seconds, got {self.poll_interval!r}"
            )
        timeout = _timeout_seconds(self.timeout)
        if not isinstance(self.name, str) or not self.name.strip():
            raise GraphInputError(f"request set name must be a non-empty string, got {self.name!r}")
        key = task_instance_key(context)
        if self.requests_path is not None:
            plan = self._file_plan(key)
        else:
            plan = self._plan(parse_rendered_list(self.requests), key, 0)
        self.request_set_ids = []
        if not plan.parts:
            self.log.info("No requests to submit: nothing sent")
            return self._nothing_to_do(context)
        self.log.info(
            "Submitting %d request(s) to %s as %d request set(s) named %r (task instance key %s)",
            plan.total,
            plan.ad_account_id,
            len(plan.parts),
            plan.parts[0].name,
            key,
        )

        def record(part: SubmittedSet) -> None:
            # Ids are recorded as each part comes to exist, so on_kill can cancel a half-done submission.
            if part.id not in self.request_set_ids:
                self.request_set_ids.append(part.id)
            self.log.info(
                "Request set %s (%r): %d request(s), %s",
                part.id,
                part.name,
                part.size,
                "created" if part.created else "already existed, reused",
            )

        submission = TaskInstanceSubmission(
            self.hook,
            plan,
            lambda requests, generation: self._plan(requests, key, generation),
            store=TaskStateStore.of(context, STATE_KEY),
            on_set=record,
        ).run()
        self.request_set_ids = submission.set_ids
        if submission.resubmitted:
            self.log.info("Submitted %d canceled request(s) again", submission.resubmitted)
        self.log.info("Request sets holding the work: %s", ", ".join(self.request_set_ids))
        if not self.wait_for_completion:
            return self.request_set_ids

        ti = context.get("ti")
        if ti is not None and hasattr(ti, "xcom_push"):
            ti.xcom_push(key="request_set_ids", value=self.request_set_ids)
        # One check before deferring: sets already done (or gone) need no wait at all.
        wait = SetWait(self.request_set_ids, self.log, fail_on_request_errors=self.fail_on_request_errors)
        event, _ = wait.try_poll(self.hook, float(self.poll_interval))
        if event is not None:
            return event_result(event)
        if self.deferrable:
            from airflow_fb_async.triggers.async_request_set import AsyncRequestSetTrigger

            self.defer(
                trigger=AsyncRequestSetTrigger(
                    request_set_ids=self.request_set_ids,
                    graph_conn_id=self.graph_conn_id,
                    api_version=self.api_version,
                    poll_interval=float(self.poll_interval),
                    end_time=time.time() + timeout if timeout is not None else None,
                    fail_on_request_errors=self.fail_on_request_errors,
                    cancel_on_kill=self.cancel_on_kill,
                ),
                method_name="execute_complete",
                timeout=timedelta(seconds=timeout) if timeout is not None else None,
            )
        return wait.wait_sync(self.hook, float(self.poll_interval), timeout)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, dict[str, int]]:
        """Resume after the trigger fired: validate the event and return the summary (raises on error/timeout)."""
        return settle(event, self.fail_on_request_errors, self.log)

    def on_kill(self) -> None:
        if self.cancel_on_kill and self.request_set_ids:
            cancel_sets(self.hook.cancel, self.request_set_ids, self.log, self.hook.scrub)

    def _plan(self, requests: Any, key: str, generation: int) -> RequestSetPlan:
        """Generation 0: the task's requests; generation g: canceled ones submitted again."""
        suffix = f" (resubmit {generation})" if generation else ""
        return plan_request_sets(
            self.ad_account_id,
            requests,
            f"{self.name}{suffix}",
            notification_uri=self.notification_uri,
            notification_mode=self.notification_mode,
            max_set_size=self.max_set_size,
            idempotency_key=f"{key}|resubmit {generation}" if generation else key,
        )

    def _file_plan(self, key: str) -> RequestSetPlan:
        """Generation 0 from ``requests_path``: validated line by line now, sets read when created."""
        source = storage_path(self.requests_path, "requests_path")
        plan, scan = file_request_set_plan(
            source,
            self.ad_account_id,
            self.name,
            notification_uri=self.notification_uri,
            notification_mode=self.notification_mode,
            max_set_size=self.max_set_size,
            idempotency_key=key,
        )
        self.log.info(
            "Requests file %s: %d request(s) in %d set(s), sha256 %s",
            source,
            scan.count,
            len(scan.windows),
            scan.sha256[:16],
        )
        return plan

    def _nothing_to_do(self, context: Context) -> list[str] | dict[str, dict[str, int]]:
        if not self.wait_for_completion:
            return []
        ti = context.get("ti")
        if ti is not None and hasattr(ti, "xcom_push"):
            ti.xcom_push(key="request_set_ids", value=[])
        return {}


class UpdateAsyncRequestSetOperator(_GraphOperatorMixin, BaseOperator):
    """
    Update a request set's name or notification settings.

    Graph lets the notification fields change only until the notification is sent; after that the
    operator fails with a message saying so.

    :param request_set_id: the request set. (templated)
    :param name: new name. (templated)
    :param notification_uri: new http(s) notification URL. (templated)
    :param notification_mode: ``OFF`` or ``ON_COMPLETE``. (templated)
    :param graph_conn_id: Graph connection id. (templated)
    :param api_version: Graph API version, default the connection's. (templated)
    :return: True
    """

    template_fields: Sequence[str] = (
        "request_set_id",
        "name",
        "notification_uri",
        "notification_mode",
        "graph_conn_id",
        "api_version",
    )

    def __init__(
        self,
        *,
        request_set_id: str,
        name: str | None = None,
        notification_uri: str | None = None,
        notification_mode: str | None = None,
        graph_conn_id: str = "facebook_graph_default",
        api_version: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.request_set_id = request_set_id
        self.name = name
        self.notification_uri = notification_uri
        self.notification_mode = notification_mode
        self.graph_conn_id = graph_conn_id
        self.api_version = api_version

    def execute(self, context: Context) -> bool:
        set_id = _object_id(self.request_set_id, "request_set_id")
        if self.name is None and self.notification_uri is None and self.notification_mode is None:
            raise GraphInputError(
                "nothing to update: give at least one of name, notification_uri, notification_mode"
            )
        name = validate_set_name(self.name) if self.name is not None else None
        uri = validate_notification_uri(self.notification_uri)
        mode = validate_notification_mode(self.notification_mode)
        try:
            ok = self.hook.update_request_set(set_id, name=name, notification_uri=uri, notification_mode=mode)
        except GraphAPIError as err:
            if (uri is not None or mode is not None) and self._notification_sent(set_id, err):
                raise GraphAPIError(
                    f"cannot update request set {set_id}: its notification was already sent, so "
                    "notification_uri and notification_mode can no longer change (Graph said: "
                    f"{err.message})",
                    code=err.code,
                    error_subcode=err.error_subcode,
                    type=err.type,
                    fbtrace_id=err.fbtrace_id,
                    status_code=err.status_code,
                    method=err.method,
                    path=err.path,
                ) from err
            raise
        if ok is False:
            raise FacebookGraphError(f"Graph did not confirm the update of request set {set_id}")
        changed = {
            k: v for k, v in (("name", name), ("notification_uri", uri), ("notification_mode", mode)) if v
        }
        self.log.info(
            "Updated request set %s: %s", set_id, ", ".join(f"{k}={v!r}" for k, v in changed.items())
        )
        return True

    def _notification_sent(self, set_id: str, err: GraphAPIError) -> bool:
        try:
            status = self.hook.get_request_set(set_id, fields="id,notification_status").get(
                "notification_status"
            )
        except FacebookGraphError:
            status = None
        if isinstance(status, str):
            return status.strip().lower() in ("sent", "sending")
        return "notification" in (err.message or "").lower()


class CancelAsyncRequestSetOperator(_GraphOperatorMixin, BaseOperator):
    """
    Cancel request sets or single requests: what is not yet processed is canceled.

    Reads each object before and after and logs how many requests were canceled.

    :param object_ids: one id, a comma-separated string, or a list; request set ids and request ids
        may be mixed (an XCom from ``SubmitAsyncBatchOperator`` works as is). (templated)
    :param graph_conn_id: Graph connection id. (templated)
    :param api_version: Graph API version, default the connection's. (templated)
    :return: ``{object_id: {"type": "request_set" | "request", "canceled": n, ...counts or status}}``
    """

    template_fields: Sequence[str] = ("object_ids", "graph_conn_id", "api_version")

    def __init__(
        self,
        *,
        object_ids: str | list[str],
        graph_conn_id: str = "facebook_graph_default",
        api_version: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.object_ids = object_ids
        self.graph_conn_id = graph_conn_id
        self.api_version = api_version

    def execute(self, context: Context) -> dict[str, dict[str, Any]]:
        ids = normalize_ids(self.object_ids, "object_ids", "single Graph object id (request set or request)")
        kinds = self._read_default_fields(ids)
        set_ids = [i for i in ids if "status" not in (kinds.get(i) or {})]
        request_ids = [i for i in ids if i not in set_ids]
        before = self.hook.get_request_sets(set_ids, fields=SET_FIELDS) if set_ids else {}
        before.update({i: kinds.get(i) or {} for i in request_ids})

        for object_id in ids:
            item = before.get(object_id) or {}
            if object_id in set_ids and set_is_completed(item):
                self.log.info("Request set %s is already completed: nothing to cancel", object_id)
                continue
            status = _status(item)
            if object_id in request_ids and status is not None and status.is_terminal():
                self.log.info("Request %s is already %s: nothing to cancel", object_id, item.get("status"))
                continue
            if self.hook.cancel(object_id) is False:
                raise FacebookGraphError(f"Graph did not confirm the cancellation of {object_id}")

        after = self.hook.get_request_sets(set_ids, fields=SET_FIELDS) if set_ids else {}
        if request_ids:
            after.update(self._read_default_fields(request_ids))
        out: dict[str, dict[str, Any]] = {}
        total = 0
        for object_id in ids:
            old, new = before.get(object_id) or {}, after.get(object_id) or {}
            if object_id in set_ids:
                canceled = max(0, set_count(new.get("canceled_count")) - set_count(old.get("canceled_count")))
                counts = {k: set_count(new.get(k)) for k in SET_COUNT_FIELDS}
                out[object_id] = {
                    "type": "request_set",
                    "canceled": canceled,
                    "is_completed": set_is_completed(new),
                    **counts,
                }
                self.log.info(
                    "Request set %s: canceled %d request(s); now %d succeeded, %d failed, %d canceled of %d "
                    "(completed: %s)",
                    object_id,
                    canceled,
                    counts["success_count"],
                    counts["error_count"],
                    counts["canceled_count"],
                    counts["total_count"],
                    set_is_completed(new),
                )
            else:
                old_status, new_status = _status(old), _status(new)
                was = old_status is not None and old_status.is_canceled()
                now = new_status is not None and new_status.is_canceled()
                canceled = int(now and not was)
                out[object_id] = {
                    "type": "request",
                    "canceled": canceled,
                    "status_before": old.get("status"),
                    "status": new.get("status"),
                }
                self.log.info(
                    "Request %s: %s -> %s (%s)",
                    object_id,
                    old.get("status"),
                    new.get("status"),
                    "canceled" if canceled else "not canceled",
                )
            total += canceled
        self.log.info("Canceled %d request(s) across %d object(s)", total, len(ids))
        return out

    def _read_default_fields(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        """Multi-id read with Graph's default fields, valid for sets and requests alike.

        A set answers ``id, owner_id, name, is_completed``; a request ``id, scope_object_id, status``.
        """
        out = self.hook.get_objects(ids)
        missing = [i for i in ids if i not in out]
        if missing:
            raise FacebookGraphError(f"Graph did not return object(s) {', '.join(missing)}")
        return out


def _status(item: Mapping[str, Any]) -> AsyncRequestStatus | None:
    try:
        return AsyncRequestStatus.parse(item["status"])
    except (KeyError, ValueError):
        return None


def _object_id(value: Any, what: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)) or not str(value).strip():
        raise GraphInputError(f"{what} must be a non-empty id, got {value!r}")
    text = str(value).strip()
    if any(ch in text for ch in "/?&#, "):
        raise GraphInputError(f"{what} must be a single Graph object id, got {value!r}")
    return text
