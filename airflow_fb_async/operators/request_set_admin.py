"""Operators that act on request sets already submitted: update their settings, cancel them.

Both are re-exported from :mod:`airflow_fb_async.operators.async_batch`, the contracted import path.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_fb_async.exceptions import FacebookGraphError, GraphAPIError, GraphInputError
from airflow_fb_async.hooks.request_set_plan import (
    validate_notification_mode,
    validate_notification_uri,
    validate_set_name,
)
from airflow_fb_async.hooks.set_fields import DEFAULT_SET_FIELDS, SET_COUNT_FIELDS
from airflow_fb_async.hooks.statuses import AsyncRequestStatus, set_count, set_is_completed
from airflow_fb_async.operators._graph_operator import GraphOperator
from airflow_fb_async.waiting.ids import normalize_ids

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from airflow_fb_async._compat import Context


class UpdateAsyncRequestSetOperator(GraphOperator):
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
        *GraphOperator.template_fields,
    )

    def __init__(
        self,
        *,
        request_set_id: str,
        name: str | None = None,
        notification_uri: str | None = None,
        notification_mode: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.request_set_id = request_set_id
        self.name = name
        self.notification_uri = notification_uri
        self.notification_mode = notification_mode

    def execute(self, context: Context) -> bool:
        """Validate the new settings (before any HTTP), update the set, and say what changed."""
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
                envelope = {k: v for k, v in err.to_dict().items() if k != "message"}
                raise GraphAPIError(
                    f"cannot update request set {set_id}: its notification was already sent, so "
                    "notification_uri and notification_mode can no longer change (Graph said: "
                    f"{err.message})",
                    **envelope,
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
        """Whether Graph refused because the notification is already out (read from the set when
        possible, else guessed from Graph's message)."""
        try:
            status = self.hook.get_request_set(set_id, fields="id,notification_status").get(
                "notification_status"
            )
        except FacebookGraphError:
            status = None
        if isinstance(status, str):
            return status.strip().lower() in ("sent", "sending")
        return "notification" in (err.message or "").lower()


class CancelAsyncRequestSetOperator(GraphOperator):
    """
    Cancel request sets or single requests: what is not yet processed is canceled.

    Reads each object before and after and logs how many requests were canceled.

    :param object_ids: one id, a comma-separated string, or a list; request set ids and request ids
        may be mixed (an XCom from ``SubmitAsyncBatchOperator`` works as is). (templated)
    :param graph_conn_id: Graph connection id. (templated)
    :param api_version: Graph API version, default the connection's. (templated)
    :return: ``{object_id: {"type": "request_set" | "request", "canceled": n, ...counts or status}}``
    """

    template_fields: Sequence[str] = ("object_ids", *GraphOperator.template_fields)

    def __init__(self, *, object_ids: str | list[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.object_ids = object_ids

    def execute(self, context: Context) -> dict[str, dict[str, Any]]:
        """Cancel what is still pending in each object; return what each canceled, read before and after."""
        ids = normalize_ids(self.object_ids, "object_ids", "single Graph object id (request set or request)")
        kinds = self._read_default_fields(ids)
        set_ids = [i for i in ids if "status" not in (kinds.get(i) or {})]
        request_ids = [i for i in ids if i not in set_ids]
        before = self.hook.get_request_sets(set_ids, fields=DEFAULT_SET_FIELDS) if set_ids else {}
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

        after = self.hook.get_request_sets(set_ids, fields=DEFAULT_SET_FIELDS) if set_ids else {}
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
    """A request's status, or None when it has none or one we do not know."""
    try:
        return AsyncRequestStatus.parse(item["status"])
    except (KeyError, ValueError):
        return None


def _object_id(value: Any, what: str) -> str:
    """One Graph object id (not a path, not a list); GraphInputError naming ``what`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, (str, int)) or not str(value).strip():
        raise GraphInputError(f"{what} must be a non-empty id, got {value!r}")
    text = str(value).strip()
    if any(ch in text for ch in "/?&#, "):
        raise GraphInputError(f"{what} must be a single Graph object id, got {value!r}")
    return text
