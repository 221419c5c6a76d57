"""The event vocabulary of every waiter on request sets, and the summaries they return.

A trigger fires exactly one event, ``{"status": "success" | "error" | "timeout", "message": str,
"request_sets": {set_id: {"total_count", "success_count", "error_count", "canceled_count"}}}``
(:func:`make_event`); every ``execute_complete`` and every synchronous waiter turns an event into
its summary, or into :class:`AsyncRequestSetError` with the message and counts, through
:func:`event_result`, so the trigger, the sensor and the submit operator fail with the same words.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow_fb_async.exceptions import AsyncRequestSetError
from airflow_fb_async.hooks.statuses import set_count
from airflow_fb_async.waiting.ids import short_repr

#: Event statuses; nothing else is ever emitted.
EVENT_STATUSES = ("success", "error", "timeout")
#: Counts kept in summaries, events and XComs.
SUMMARY_FIELDS = ("total_count", "success_count", "error_count", "canceled_count")


def summarize_sets(raw: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, int]]:
    """``{set_id: raw set}`` (as the hooks' ``get_request_sets`` return) -> ``{set_id: {counts}}``.

    Missing or null counts become 0, so the result is always plain JSON of ints.
    """
    return {
        str(set_id): {field: set_count((data or {}).get(field)) for field in SUMMARY_FIELDS}
        for set_id, data in raw.items()
    }


def totals(summary: Mapping[str, Mapping[str, int]]) -> dict[str, int]:
    """Sum every count of a summary."""
    return {field: sum(set_count(s.get(field)) for s in summary.values()) for field in SUMMARY_FIELDS}


def describe_totals(summary: Mapping[str, Mapping[str, int]]) -> str:
    """``"2 request set(s), 5 request(s): 3 succeeded, 2 failed, 0 canceled"``."""
    t = totals(summary)
    return (
        f"{len(summary)} request set(s), {t['total_count']} request(s): {t['success_count']} succeeded, "
        f"{t['error_count']} failed, {t['canceled_count']} canceled"
    )


def failed_sets_text(summary: Mapping[str, Mapping[str, int]], limit: int = 10) -> str:
    """``"123 (2 of 10), 456 (1 of 5)"`` for the sets with errors (at most ``limit`` named)."""
    bad = [(sid, c) for sid, c in summary.items() if set_count(c.get("error_count"))]
    text = ", ".join(f"{sid} ({c['error_count']} of {c['total_count']})" for sid, c in bad[:limit])
    if len(bad) > limit:
        text += f", and {len(bad) - limit} more"
    return text


def request_errors_message(summary: Mapping[str, Mapping[str, int]]) -> str | None:
    """The failure message for ``fail_on_request_errors``, or None when no request ended in error."""
    t = totals(summary)
    if not t["error_count"]:
        return None
    return (
        f"{t['error_count']} of {t['total_count']} request(s) ended in error "
        f"in request set(s) {failed_sets_text(summary)} ({describe_totals(summary)})"
    )


def event_envelope(status: str, message: str, key: str, body: dict[str, Any]) -> dict[str, Any]:
    """The one shape of every waiter's event, ``{"status", "message", key: body}`` (``key``:
    ``request_sets`` or ``report_runs``); an unknown status is refused."""
    if status not in EVENT_STATUSES:
        raise ValueError(f"unknown event status {status!r}")
    return {"status": status, "message": str(message), key: body}


def envelope_problems(event: Mapping[str, Any]) -> list[str]:
    """What is wrong with an event's ``status`` and ``message`` (empty when both are well-formed)."""
    problems = []
    status = event.get("status")
    if status not in EVENT_STATUSES:
        problems.append(f"status {short_repr(status)} is not one of {', '.join(EVENT_STATUSES)}")
    if not isinstance(event.get("message"), str):
        problems.append("message is missing or not a string")
    return problems


def make_event(status: str, message: str, summary: Mapping[str, Mapping[str, int]]) -> dict[str, Any]:
    """Build a request-set event payload (plain JSON, the only shape any set waiter emits)."""
    counts = {str(k): {f: set_count(v.get(f)) for f in SUMMARY_FIELDS} for k, v in summary.items()}
    return event_envelope(status, message, "request_sets", counts)


def event_result(event: Any) -> dict[str, dict[str, int]]:
    """Validate a trigger event; return its summary on ``success``.

    Raises :class:`AsyncRequestSetError` (with ``status``, ``request_sets`` and the message) on
    ``error`` and ``timeout`` events, and on anything that is not a well-formed event.
    """
    if not isinstance(event, Mapping):
        raise AsyncRequestSetError(
            f"malformed request set event: expected a dict, got {type(event).__name__}"
        )
    status, message, sets = event.get("status"), event.get("message"), event.get("request_sets")
    problems = envelope_problems(event)
    summary: dict[str, dict[str, int]] = {}
    if not isinstance(sets, Mapping):
        problems.append("request_sets is missing or not a dict")
    else:
        for set_id, counts in sets.items():
            if not isinstance(counts, Mapping) or any(
                not isinstance(counts.get(f), int) or isinstance(counts.get(f), bool) for f in SUMMARY_FIELDS
            ):
                problems.append(f"request_sets[{short_repr(set_id)}] lacks integer counts {SUMMARY_FIELDS}")
                break
            summary[str(set_id)] = {f: int(counts[f]) for f in SUMMARY_FIELDS}
    if problems:
        raise AsyncRequestSetError(
            "malformed request set event: " + "; ".join(problems), status="malformed", request_sets=summary
        )
    if status == "success":
        return summary
    label = "timed out" if status == "timeout" else "failed"
    text = f"Waiting on async request sets {label}: {message}"
    if summary and describe_totals(summary) not in str(message):
        text += f" [{describe_totals(summary)}]"
    raise AsyncRequestSetError(text, status=str(status), request_sets=summary)
