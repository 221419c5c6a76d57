"""The emulator's settings: defaults, validation of ``POST /__admin/config``, counters layout."""

from __future__ import annotations

from typing import Any

from .faults import COUNTED_AS, FAULT_TYPES, validate_random_spec

KINDS = (
    "batch",
    "async_batch_create",
    "insights_start",
    "get_object",
    "get_multi",
    "get_edge",
    "create",
    "update",
    "delete",
    "upload",
    "other",
)
#: ``faults_injected`` keys: one per fault type (both drops count as ``drop``), plus ``null`` entries.
FAULT_COUNTERS = tuple(
    dict.fromkeys(["500", "throttle", "drop", "null", "code1", *(COUNTED_AS.get(t, t) for t in FAULT_TYPES)])
)
THROTTLE_CODES = frozenset({4, 17, 32, 341, 613, *range(80000, 80015)})


def default_config(
    latency: float = 0.0, null_fraction: float = 0.0, async_pace: float = 200.0, app_secret: str | None = None
) -> dict[str, Any]:
    return {
        "latency": float(latency),
        "latency_jitter": 0.0,
        "null_fraction": float(null_fraction),
        "async_pace": float(async_pace),
        "regain_unit_seconds": 60.0,
        "usage_budget": 100000,
        "usage_window": 60.0,
        "throttle_code": 80004,
        "max_page_size": 500,
        "app_secret": app_secret,
        "random_faults": None,
        "code1_above": None,
        "async_hold_in_progress": False,
        "insights_pace": 100.0,
        "insights_fail_above_days": None,
    }


def fresh_counters() -> dict[str, Any]:
    return {
        "http_calls": 0,
        "calls_by_kind": dict.fromkeys(KINDS, 0),
        "batch_entries": 0,
        "objects_created": 0,
        "objects_created_by_type": {},
        "request_sets_created": 0,
        "max_concurrent_connections": 0,
        "max_concurrent_requests": 0,
        "throttled_calls": 0,
        "faults_injected": dict.fromkeys(FAULT_COUNTERS, 0),
    }


def validate_config(changes: dict[str, Any]) -> dict[str, Any]:
    known = default_config()
    out: dict[str, Any] = {}
    for key, value in changes.items():
        if key not in known:
            raise ValueError(f"unknown config key {key!r}; known: {', '.join(sorted(known))}")
        if key in ("latency", "latency_jitter", "async_pace", "insights_pace"):
            value = float(value)
            if value < 0:
                raise ValueError(f"{key} must be >= 0")
        elif key in ("regain_unit_seconds", "usage_window"):
            value = float(value)
            if value <= 0:
                raise ValueError(f"{key} must be > 0")
        elif key == "null_fraction":
            value = float(value)
            if not 0 <= value <= 1:
                raise ValueError("null_fraction must be within 0..1")
        elif key in ("usage_budget", "max_page_size"):
            value = int(value)
            if value < 1:
                raise ValueError(f"{key} must be >= 1")
        elif key == "throttle_code":
            value = int(value)
            if value not in THROTTLE_CODES:
                raise ValueError("throttle_code must be a Graph throttling code (80004, 17, 613, ...)")
        elif key == "app_secret":
            value = None if value in (None, "") else str(value)
        elif key == "insights_fail_above_days":
            value = None if value is None else int(value)
            if value is not None and value < 1:
                raise ValueError("insights_fail_above_days must be >= 1 or null")
        elif key == "code1_above":
            value = None if value is None else int(value)
            if value is not None and value < 0:
                raise ValueError("code1_above must be >= 0 or null")
        elif key == "random_faults":
            value = validate_random_spec(value)
        elif key == "async_hold_in_progress" and not isinstance(value, bool):
            raise ValueError("async_hold_in_progress must be true or false")
        out[key] = value
    return out
