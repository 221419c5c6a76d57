"""Read errors while waiting: which ones a waiter rides out, how long it backs off, how it reports them.

No rule of its own: what is retryable and how long to wait come from the hooks' one
:class:`~airflow_fb_async.hooks.retry.RetryPolicy` (throttled or transient: yes, with exponential
back-off and full jitter, at least a throttle's announced regain time; anything else: final), and
error texts pass through the hooks' :class:`~airflow_fb_async.hooks.scrub.Scrubber`.
"""

from __future__ import annotations

import re
import sys
from typing import TYPE_CHECKING, Any

from airflow_fb_async.exceptions import GraphAPIError
from airflow_fb_async.hooks.retry import RetryPolicy

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

#: Upper bound of a waiter's back-off after failed reads, whatever its poll interval.
MAX_ERROR_BACKOFF = 300.0
#: Lower bound of the back-off base (an interval of 0 must not make a busy loop).
MIN_BACKOFF_BASE = 0.05
#: Error texts in events and logs are cut to this length.
MAX_ERROR_TEXT = 200

_POLICY = RetryPolicy()
_NONEXISTENT_RE = re.compile(r"do not exist:\s*([0-9A-Za-z_,\s]+)")


def is_retryable(exc: BaseException) -> bool:
    """Whether a waiter rides ``exc`` out: throttled or transient (the hook has spent its own retries)."""
    return isinstance(exc, GraphAPIError) and _POLICY.is_retryable(exc)


def retry_delay(exc: BaseException, attempt: int, interval: float) -> float | None:
    """Seconds to wait after the ``attempt``-th consecutive failed read of a waiter polling every
    ``interval`` seconds (exponential from the interval, capped at :data:`MAX_ERROR_BACKOFF` or the
    interval, at least a throttle's regain time); None when ``exc`` is final."""
    if not isinstance(exc, GraphAPIError):
        return None
    base = max(float(interval), MIN_BACKOFF_BASE)
    policy = RetryPolicy(backoff_base=base, backoff_max=max(MAX_ERROR_BACKOFF, base))
    delay = policy.delay_for(exc, attempt, max_retries=sys.maxsize)
    return None if delay is None else max(delay, MIN_BACKOFF_BASE)


def nonexistent_ids(exc: BaseException, ids: Iterable[str]) -> set[str]:
    """Ids of ``ids`` that Graph names as non-existent (code 803, "Some of the aliases you requested
    do not exist: a,b"); empty for any other error."""
    if not isinstance(exc, GraphAPIError) or exc.code != 803:
        return set()
    match = _NONEXISTENT_RE.search(exc.message or "")
    if not match:
        return set()
    named = {part.strip() for part in match.group(1).split(",")}
    return {i for i in ids if i in named}


def describe_error(exc: BaseException, scrub: Callable[[str], str] | None = None) -> str:
    """Short, token-free description of an error: its type and Graph code, plus the scrubbed and
    truncated message. ``scrub`` is the hook's (it knows the token); without one, the generic
    scrubber still removes every ``access_token=`` value and ``Authorization`` credential."""
    name = type(exc).__name__
    if isinstance(exc, GraphAPIError):
        head = f"{name} (code {exc.code}"
        if exc.error_subcode:
            head += f"/{exc.error_subcode}"
        if exc.type:
            head += f", {exc.type}"
        if exc.http_status is not None:
            head += f", HTTP {exc.http_status}"
        head += ")"
        raw: Any = exc.message or ""
    else:
        head = name
        raw = str(exc)
    if scrub is None:
        # Imported here: by the time a waiter reports an error the hook module (and its scrubber) is loaded;
        # the trigger module itself stays light to import on the triggerer's loop.
        from airflow_fb_async.hooks.scrub import Scrubber

        scrub = Scrubber()
    try:
        text = " ".join(str(scrub(str(raw))).split())
    except Exception:
        text = ""
    if len(text) > MAX_ERROR_TEXT:
        text = text[: MAX_ERROR_TEXT - 3] + "..."
    return f"{head}: {text}" if text else head
