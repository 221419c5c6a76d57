"""One async request as :class:`~airflow_fb_async.operators.results.AsyncRequestResultsOperator`
hands it on: the normalised item, its errors, the object it created, and count estimates.

Normalised item (one per request)::

    {
        "id": "<request id>",
        "request_set_id": "<set id>",
        "status": "SUCCESS",              # upper case, whatever Graph's spelling
        "result": {"id": "1202..."},      # parsed when Graph sends a JSON string
        "errors": [],                     # [{"error_code": int, "error_message": str, ...}]
        ...                               # plus every extra field asked for with ``fields``
    }

``errors`` is always a list: Graph's docs describe the error ``result`` as an array of
``{error_code, error_message}``, the official SDK and the emulator return one map, and a sync-style
``{"error": {"code", "message"}}`` envelope is accepted too. It is empty for successful requests.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_fb_async.hooks.statuses import (
    CANCELED_STATUSES,
    ERROR_STATUSES,
    AsyncRequestStatus,
    as_int,
    set_count,
)
from airflow_fb_async.literals import parse_json_text

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

#: Fields always read from the ``requests`` edge.
BASE_FIELDS = ("id", "status", "result")
#: Keys of a normalised item that ``fields`` cannot override.
RESERVED_KEYS = frozenset({"id", "request_set_id", "status", "result", "errors"})
#: The set count field that counts the requests of each status (PENDING_DEPENDENCY has none).
_COUNT_FIELD = {
    AsyncRequestStatus.SUCCESS: "success_count",
    AsyncRequestStatus.INITIAL: "initial_count",
    AsyncRequestStatus.IN_PROGRESS: "in_progress_count",
    **dict.fromkeys(ERROR_STATUSES, "error_count"),
    **dict.fromkeys(CANCELED_STATUSES, "canceled_count"),
}
_ERROR_KEYS = ("error_code", "error_message", "code", "message")


def expected_total(info: Mapping[str, Any], statuses: Sequence[str] | None) -> int | None:
    """Best estimate of how many requests of a set match ``statuses``, from its counts; None when
    its counts cannot tell."""
    if statuses is None:
        return set_count(info.get("total_count")) if "total_count" in info else None
    fields = {_COUNT_FIELD.get(AsyncRequestStatus(s)) for s in statuses}
    if None in fields or not all(f in info for f in fields):
        return None
    return sum(set_count(info.get(f)) for f in fields if f is not None)


def _normalize_error(entry: Any) -> dict[str, Any] | None:
    entry = parse_json_text(entry)
    if not isinstance(entry, dict):
        return None
    if isinstance(entry.get("error"), dict):  # sync-style envelope {"error": {"code", "message"}}
        entry = entry["error"]
    if not any(k in entry for k in _ERROR_KEYS):
        return None
    code = entry.get("error_code", entry.get("code"))
    number = as_int(code) if isinstance(code, str) else None  # "100" -> 100; other values as sent
    out = {
        "error_code": code if number is None else number,
        "error_message": entry.get("error_message", entry.get("message")),
    }
    out.update({k: v for k, v in entry.items() if k not in _ERROR_KEYS and k not in out})
    return out


def normalize_errors(result: Any) -> list[dict[str, Any]]:
    """Error ``result`` of a request -> list of ``{"error_code", "error_message", ...}``.

    Accepts a map (SDK, emulator), an array of maps (Graph's docs), either as a JSON string, and a
    sync-style ``{"error": {...}}`` envelope.
    """
    result = parse_json_text(result)
    entries = result if isinstance(result, list) else [result]
    return [e for e in (_normalize_error(x) for x in entries) if e is not None]


def normalize_request(
    raw: Mapping[str, Any], request_set_id: str, extra_fields: Sequence[str] = ()
) -> dict[str, Any]:
    """One item of ``<set>/requests`` -> the normalised item (see the module docstring)."""
    status_raw = raw.get("status")
    try:
        status: str | None = AsyncRequestStatus.parse(status_raw).value if status_raw is not None else None
    except ValueError:
        status = str(status_raw).strip().upper()  # an unknown spelling: keep it, never crash
    result = parse_json_text(raw.get("result"))
    errors = [] if status == AsyncRequestStatus.SUCCESS.value or result is None else normalize_errors(result)
    item: dict[str, Any] = {
        "id": None if raw.get("id") is None else str(raw["id"]),
        "request_set_id": request_set_id,
        "status": status,
        "result": result,
        "errors": errors,
    }
    for field in extra_fields:
        if field not in RESERVED_KEYS:
            item[field] = raw.get(field)
    return item


def created_object_id(item: Mapping[str, Any]) -> str | None:
    """The object id a successful request created (``result.id``), else None."""
    if item.get("status") != AsyncRequestStatus.SUCCESS.value:
        return None
    result = item.get("result")
    if isinstance(result, dict) and result.get("id") not in (None, ""):
        return str(result["id"])
    return None
