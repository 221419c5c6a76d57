"""The one retry policy of both hooks (sans-IO).

The sync and async loops call :meth:`RetryPolicy.delay_for` after every failed attempt and only
differ in how they sleep. Input is always a typed :class:`GraphAPIError` (response errors and
transport failures are both turned into one before deciding):

- :class:`GraphAmbiguousError` (sent, no answer, not idempotent): never retried;
- a Graph code listed in ``raise_codes``: never retried;
- :class:`GraphThrottledError`: retried after ``retry_after`` (from ``estimated_time_to_regain_access``,
  capped by ``max_wait``) or the backoff when unknown;
- :class:`GraphTransientError` (codes 1, 2, ``is_transient``, HTTP 5xx, transport failures that are
  safe to repeat): exponential backoff with full jitter;
- anything else (190, 100, 10, 200, ...): raised at once.

Every retry counts: at most ``max_retries`` of them (``1 + max_retries`` attempts in all).

Which calls may be resent at all is decided here too, in one place for plain calls and batch
entries (:func:`is_repeatable`): reads, updates of one object (``POST <id>``) and deletes are
repeatable; a create on an edge (``POST act_1/ads``, ``act_1/async_batch_requests``) and anything
else is not. An *uncertain outcome* (:func:`is_uncertain_status`: HTTP 5xx, Graph codes 1 / 2,
``is_transient``; or no answer after sending) of a call that is not repeatable is never resent: the
hook turns it into :class:`GraphAmbiguousError`. Throttling means "not done": retried for every call.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from airflow_fb_async.exceptions import (
    GraphAmbiguousError,
    GraphAPIError,
    GraphThrottledError,
    GraphTransientError,
)
from airflow_fb_async.hooks.throttle import MAX_THROTTLE_WAIT, capped_wait
from airflow_fb_async.hooks.urls import VERSION_PREFIX_RE

if TYPE_CHECKING:
    from collections.abc import Callable, Collection

TRANSIENT_CODES = frozenset({1, 2})
THROTTLE_CODES = frozenset(
    {4, 17, 32, 341, 613, 80000, 80001, 80002, 80003, 80004, 80005, 80006, 80008, 80009, 80014}
)
# 190 invalid/expired token, 102 session key, 104 token required, 10 / 200-299 permissions.
AUTH_CODES = frozenset({190, 102, 104, 10, *range(200, 300)})
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def is_repeatable(method: str, path: str) -> bool:
    """Whether resending ``method path`` is harmless: a read, a ``DELETE``, or an update ``POST <id>``
    (the path is one object id, such as ``6004251715639`` or ``act_123``). A ``POST`` to an edge
    (``act_123/ads``) creates something, and the root ``POST /`` is a batch: not repeatable.

    Callers override it per call (``idempotent=``) or per batch entry (``"idempotent"``).
    """
    verb = str(method).strip().upper()
    if verb in READ_METHODS or verb == "DELETE":
        return True
    if verb != "POST":
        return False
    target = str(path).split("?", 1)[0].strip().strip("/")
    target = VERSION_PREFIX_RE.sub("", target).strip("/")
    return bool(target) and "/" not in target


def is_uncertain_status(status: int | None, code: int | None, is_transient: bool) -> bool:
    """An answer that does not prove the call had no effect: HTTP 5xx, codes 1 / 2, ``is_transient``.

    Throttling codes are *not* uncertain (the call was refused): check them first.
    """
    return (status is not None and status >= 500) or code in TRANSIENT_CODES or bool(is_transient)


@dataclass
class RetryPolicy:
    """Bounded retries with exponential backoff and full jitter."""

    max_retries: int = 5
    backoff_base: float = 1.0
    backoff_max: float = 60.0
    max_wait: float = MAX_THROTTLE_WAIT  # cap of a throttle's announced wait (conn extra max_throttle_wait)
    rng: Callable[[float, float], float] = field(default=random.uniform)

    def backoff(self, retry_number: int) -> float:
        """Full jitter: uniform(0, min(cap, base * 2 ** (n - 1))) for the n-th retry (n >= 1)."""
        ceiling = min(self.backoff_max, self.backoff_base * (2 ** max(retry_number - 1, 0)))
        return self.rng(0.0, ceiling) if ceiling > 0 else 0.0

    def is_retryable(self, error: GraphAPIError, raise_codes: Collection[int] = ()) -> bool:
        if isinstance(error, GraphAmbiguousError):
            return False
        if error.code is not None and error.code in raise_codes:
            return False
        return isinstance(error, GraphThrottledError | GraphTransientError)

    def delay_for(
        self,
        error: GraphAPIError,
        attempt: int,
        *,
        raise_codes: Collection[int] = (),
        max_retries: int | None = None,
    ) -> float | None:
        """Seconds to sleep before the next attempt, or None to raise ``error`` now.

        ``attempt`` is the number of attempts already made (1 after the first failure).
        """
        limit = self.max_retries if max_retries is None else max_retries
        if attempt > limit or not self.is_retryable(error, raise_codes):
            return None
        retry_after = error.retry_after if isinstance(error, GraphThrottledError) else None
        if retry_after is not None and retry_after == retry_after:  # NaN: unknown, back off instead
            return capped_wait(retry_after, self.max_wait)
        return self.backoff(attempt)
