"""What the emulator stores: the node types, their Graph names and default fields, what of a stored
object is public (:func:`public`), and the status vocabulary of async requests and report runs.

A leaf module (it imports nothing of the emulator), so the store, the views and every handler can
share these names without importing each other.
"""

from __future__ import annotations

from typing import Any

ACCOUNT = "account"
USER = "user"
SET_TYPE = "async_request_set"
REQUEST_TYPE = "async_request"
RUN_TYPE = "report_run"
#: The ad objects: created under an account, updated, soft-deleted (status ``DELETED``).
AD_TYPES = ("campaign", "adset", "ad", "adcreative", "adimage")
USER_ID = "100000000000001"

NODE_NAMES = {
    ACCOUNT: "AdAccount",
    "campaign": "Campaign",
    "adset": "AdSet",
    "ad": "Ad",
    "adcreative": "AdCreative",
    "adimage": "AdImage",
    SET_TYPE: "AdAsyncRequestSet",
    REQUEST_TYPE: "AdAsyncRequest",
    USER: "User",
    RUN_TYPE: "AdReportRun",
}
SET_DEFAULT_FIELDS = ["id", "owner_id", "name", "is_completed"]
REQUEST_DEFAULT_FIELDS = ["id", "scope_object_id", "status"]
RUN_DEFAULT_FIELDS = [
    "id",
    "account_id",
    "time_ref",
    "time_completed",
    "async_status",
    "async_percent_completion",
    "date_start",
    "date_stop",
]
DEFAULT_FIELDS = {
    ACCOUNT: ["id", "account_id", "name"],
    "adimage": ["hash", "id"],
    USER: ["id", "name"],
    SET_TYPE: SET_DEFAULT_FIELDS,
    REQUEST_TYPE: REQUEST_DEFAULT_FIELDS,
    RUN_TYPE: RUN_DEFAULT_FIELDS,
}
#: Fields of a node type a view shows when ``fields`` is not given.
FALLBACK_FIELDS = ["id", "name"]


def public(obj: dict[str, Any]) -> dict[str, Any]:
    """``obj`` without its private fields (names starting with ``_``: type tag, runtime, caches)."""
    return {k: v for k, v in obj.items() if not k.startswith("_")}


# ---------------------------------------------------------------- async requests

INITIAL, IN_PROGRESS, SUCCESS, ERROR, CANCELED, ERROR_DEPENDENCY = (
    "INITIAL",
    "IN_PROGRESS",
    "SUCCESS",
    "ERROR",
    "CANCELED",
    "ERROR_DEPENDENCY",
)
TERMINAL = frozenset({SUCCESS, ERROR, CANCELED, ERROR_DEPENDENCY})
FAILED = frozenset({ERROR, CANCELED, ERROR_DEPENDENCY})
KNOWN_STATUSES = frozenset(
    {
        *TERMINAL,
        INITIAL,
        IN_PROGRESS,
        "PENDING_DEPENDENCY",
        "CANCELED_DEPENDENCY",
        "USER_CANCELED",
        "USER_CANCELED_DEPENDENCY",
        "ERROR_CONFLICTS",
    }
)


def counts(s: dict[str, Any]) -> dict[str, int]:
    """A request set's ``*_count`` fields, from the status tally the store keeps."""
    c = s["counts"]
    return {
        "total_count": len(s["request_ids"]),
        "initial_count": c.get(INITIAL, 0),
        "in_progress_count": c.get(IN_PROGRESS, 0),
        "success_count": c.get(SUCCESS, 0),
        "error_count": c.get(ERROR, 0) + c.get(ERROR_DEPENDENCY, 0),
        "canceled_count": c.get(CANCELED, 0),
    }


def is_completed(s: dict[str, Any]) -> bool:
    """A set is complete when none of its requests waits or runs."""
    c = s["counts"]
    return c.get(INITIAL, 0) == 0 and c.get(IN_PROGRESS, 0) == 0


# ---------------------------------------------------------------- report runs

NOT_STARTED, STARTED, RUNNING, COMPLETED, RUN_FAILED, SKIPPED = (
    "Job Not Started",
    "Job Started",
    "Job Running",
    "Job Completed",
    "Job Failed",
    "Job Skipped",
)
UNFINISHED_RUN = frozenset({NOT_STARTED, STARTED, RUNNING})
