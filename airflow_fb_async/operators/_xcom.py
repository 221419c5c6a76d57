"""What the operators hand to XCom: bounded lists, plain scrubbed JSON, and extra keys.

XCom is for small values. An operator that may return many items (request results, report rows)
takes ``max_xcom_items`` and collects through :func:`bounded_list`, which fails with
:class:`~airflow_fb_async.exceptions.TooManyResultsError` (pointing to ``output_path``) as soon as
the limit is passed, rather than truncate. :func:`to_xcom` proves the value is JSON and scrubs the
connection's secrets from it; :func:`push_xcom` pushes a value under another key beside the
return value (the submit operator's ``summary``, a failed batch's partial results).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, TypeVar

from airflow_fb_async.exceptions import FacebookGraphError, GraphInputError, TooManyResultsError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

T = TypeVar("T")


def check_int(name: str, value: Any, low: int, *, optional: bool = False) -> None:
    """``value`` is an int >= ``low`` (None too when ``optional``); GraphInputError naming ``name``."""
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        allowed = f"None or an int >= {low}" if optional else f"an int >= {low}"
        raise GraphInputError(f"{name} must be {allowed}, got {type(value).__name__} {value!r}")


def limit_message(operator: str, count: int | str, what: str, limit: int, narrow: str) -> str:
    """Why the task fails instead of pushing ``count`` ``what`` (more than ``limit``), and what to do."""
    return (
        f"{operator}: {count} {what} to return, more than max_xcom_items={limit}. XCom is not meant "
        f"for that much data and {what} are never truncated: set output_path (a local path or an "
        f"ObjectStoragePath URL) to write them as JSON Lines, {narrow}, or raise max_xcom_items."
    )


def bounded_list(items: Iterable[T], limit: int, message: Callable[[], str]) -> list[T]:
    """The items as a list; TooManyResultsError(``message()``) as soon as there are more than ``limit``
    (the caller's iterator is not read further)."""
    out: list[T] = []
    for item in items:
        out.append(item)
        if len(out) > limit:
            raise TooManyResultsError(message())
    return out


def to_xcom(scrub: Callable[[str], str], value: Any, error: type[FacebookGraphError]) -> Any:
    """``value`` through a JSON round trip with the connection's secrets scrubbed on the way: what
    the task returns is plain JSON and never carries the token. Not JSON: ``error``."""
    try:
        return json.loads(scrub(json.dumps(value)))
    except (TypeError, ValueError) as exc:
        raise error(f"the value to return is not JSON-serialisable: {exc}") from None


def push_xcom(context: Mapping[str, Any], key: str, value: Any) -> bool:
    """Push ``value`` under ``key`` for this task instance; False when the context has no task
    instance to push with (a bare ``execute`` call)."""
    ti = context.get("ti")
    if ti is None or not hasattr(ti, "xcom_push"):
        return False
    ti.xcom_push(key=key, value=value)
    return True
