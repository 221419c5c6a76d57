"""Async request statuses, normalised in one place.

Graph's docs, its SDK and its answers spell statuses differently (``initial``, ``In_progress``,
``SUCCESS``...). Everything here compares case-insensitively and speaks upper case.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow_fb_async._compat import StrEnum

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping


class AsyncRequestStatus(StrEnum):
    """Status of one request inside an async request set."""

    INITIAL = "INITIAL"
    IN_PROGRESS = "IN_PROGRESS"
    PENDING_DEPENDENCY = "PENDING_DEPENDENCY"
    SUCCESS = "SUCCESS"
    ERROR = "ERROR"
    CANCELED = "CANCELED"
    ERROR_DEPENDENCY = "ERROR_DEPENDENCY"
    CANCELED_DEPENDENCY = "CANCELED_DEPENDENCY"
    USER_CANCELED = "USER_CANCELED"
    USER_CANCELED_DEPENDENCY = "USER_CANCELED_DEPENDENCY"
    ERROR_CONFLICTS = "ERROR_CONFLICTS"

    @classmethod
    def parse(cls, value: str) -> AsyncRequestStatus:
        """Parse any spelling (``in_progress``, ``In_progress``, ``in progress``); ValueError if unknown."""
        key = str(value).strip().upper().replace(" ", "_").replace("-", "_")
        if key == "CANCELLED":
            key = "CANCELED"
        try:
            return cls(key)
        except ValueError:
            known = ", ".join(s.value for s in cls)
            raise ValueError(f"unknown async request status {value!r} (known: {known})") from None

    def is_terminal(self) -> bool:
        """Done for good: succeeded, failed or canceled (nothing will change it any more)."""
        return self in TERMINAL_STATUSES

    def is_success(self) -> bool:
        """The request ran and Graph returned its result."""
        return self is AsyncRequestStatus.SUCCESS

    def is_error(self) -> bool:
        """Failed: its own error, a failed dependency or a conflict."""
        return self in ERROR_STATUSES

    def is_canceled(self) -> bool:
        """Canceled by a user or because what it depended on was canceled."""
        return self in CANCELED_STATUSES


ERROR_STATUSES = frozenset(
    {AsyncRequestStatus.ERROR, AsyncRequestStatus.ERROR_DEPENDENCY, AsyncRequestStatus.ERROR_CONFLICTS}
)
CANCELED_STATUSES = frozenset(
    {
        AsyncRequestStatus.CANCELED,
        AsyncRequestStatus.CANCELED_DEPENDENCY,
        AsyncRequestStatus.USER_CANCELED,
        AsyncRequestStatus.USER_CANCELED_DEPENDENCY,
    }
)
TERMINAL_STATUSES = frozenset({AsyncRequestStatus.SUCCESS}) | ERROR_STATUSES | CANCELED_STATUSES


def normalize_statuses(statuses: str | Iterable[str] | None) -> list[str] | None:
    """Validate and upper-case a status filter (one status, a comma list, or an iterable)."""
    if statuses is None:
        return None
    items = statuses.split(",") if isinstance(statuses, str) else list(statuses)
    out: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise ValueError(f"status filter items must be strings, got {type(item).__name__}: {item!r}")
        if item.strip():
            status = AsyncRequestStatus.parse(item).value
            if status not in out:
                out.append(status)
    if not out:
        raise ValueError("status filter is empty")
    return out


def as_int(value: object) -> int | None:
    """Graph's loosely typed number (``12``, ``"12"``, ``12.0``) as an int; None when it is missing,
    null, a bool or not a number. The one place counts, sizes and error codes are coerced."""
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return None


def set_count(value: object) -> int:
    """A set's count field as a non-negative int (missing, null or malformed counts are 0)."""
    number = as_int(value)
    return max(number, 0) if number is not None else 0


def set_is_completed(raw_set: Mapping[str, object]) -> bool:
    """A set's ``is_completed``, whether Graph sent a bool, ``"true"``/``"false"`` or ``1``/``0``."""
    value = raw_set.get("is_completed")
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1")
    return bool(value)
