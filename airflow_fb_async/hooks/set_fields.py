"""Request sets' fields: what the hooks read of a set, and the checks of what they write to one.

Shared by both hooks' set calls (``get_request_set(s)``, ``list_requests``, ``update_request_set``,
``cancel``). Notification modes are checked by
:func:`~airflow_fb_async.hooks.request_set_plan.validate_notification_mode`, the planner's (one
definition for creates and updates).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from airflow_fb_async.exceptions import GraphInputError
from airflow_fb_async.hooks.request_set_plan import validate_notification_mode
from airflow_fb_async.hooks.statuses import normalize_statuses

#: Count fields of a request set, in the order logs and XComs show them.
SET_COUNT_FIELDS = (
    "total_count",
    "initial_count",
    "in_progress_count",
    "success_count",
    "error_count",
    "canceled_count",
)
#: What the hooks read of a set unless told otherwise: name, completion and every count.
DEFAULT_SET_FIELDS = ("id", "name", "is_completed", *SET_COUNT_FIELDS)

__all__ = [
    "DEFAULT_SET_FIELDS",
    "SET_COUNT_FIELDS",
    "is_success",
    "status_param",
    "update_set_data",
]


def status_param(statuses: str | Iterable[str] | None) -> str | None:
    """A ``status`` filter for request listings: upper case, comma-joined (None: no filter)."""
    try:
        normalized = normalize_statuses(statuses)
    except ValueError as exc:
        raise GraphInputError(str(exc)) from None
    return ",".join(normalized) if normalized else None


def update_set_data(
    name: str | None, notification_uri: str | None, notification_mode: str | None
) -> dict[str, str]:
    """The form of ``POST <set_id>``: only the fields given; GraphInputError when none is."""
    data: dict[str, str] = {}
    if name is not None:
        data["name"] = str(name)
    if notification_uri is not None:
        data["notification_uri"] = str(notification_uri)
    mode = validate_notification_mode(notification_mode)
    if mode is not None:
        data["notification_mode"] = mode
    if not data:
        raise GraphInputError(
            "update_request_set needs at least one of name, notification_uri, notification_mode"
        )
    return data


def is_success(result: Any) -> bool:
    """Graph answers ``true`` or ``{"success": true}`` for updates and deletes."""
    if isinstance(result, bool):
        return result
    if isinstance(result, Mapping):
        return bool(result.get("success"))
    return False
