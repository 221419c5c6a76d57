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

if TYPE_CHECKING:
    from collections.abc import Callable, Collection

TRANSIENT_CODES = frozenset({1, 2})
THROTTLE_CODES = frozenset(
    {4, 17, 32, 341, 613, 80000, 80001, 80002, 80003, 80004, 80005, 80006, 80008, 80009, 80014}
)
# 190 invalid/expired token, 102 session key, 104 token required, 10 / 200-299 permissions.
AUTH_CODES = frozenset({190, 102, 104, 10, *range(200, 300)})


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
