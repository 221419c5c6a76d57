"""The one round loop of every deferrable waiter: join the loop's shared poller, wait round by
round, let the wait's rules decide.

A trigger (request sets, insights report runs) differs only in its :class:`RoundRules`: what a
round's objects mean (:meth:`~RoundRules.check`), how a ridden-out read error is logged, and the
``error`` / ``timeout`` events. :func:`wait_rounds` does the rest, alike for all::

    rules = SetWait(ids, log)                                   # or RunWait(...)
    event = await wait_rounds(conn_id, api_version, REQUEST_SET_KIND, ids, interval, end_time, rules)

The end time is kept with ``asyncio.timeout``, not ``asyncio.wait_for``: on Python 3.11 that
swallows a cancellation landing as the round arrives, and a cancelled (reassigned) trigger would go
on polling.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Protocol

from airflow_fb_async._compat import timeout
from airflow_fb_async.waiting.poller import PollKind, shared_poller

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

    from airflow_fb_async.waiting.poller import Round


class RoundRules(Protocol):
    """What a wait decides; each method that returns an event ends the wait with it."""

    def check(
        self, raw: Mapping[str, Mapping[str, Any]], missing: Iterable[str] = ()
    ) -> dict[str, Any] | None: ...

    def read_failed(
        self, exc: BaseException, retry_in: float, scrub: Callable[[Any], str] | None
    ) -> None: ...

    def error_event(
        self, exc: BaseException, scrub: Callable[[Any], str] | None = None
    ) -> dict[str, Any]: ...

    def timeout_event(self) -> dict[str, Any]: ...


async def wait_rounds(
    graph_conn_id: str,
    api_version: str | None,
    kind: PollKind,
    ids: list[str],
    interval: float,
    end_time: float | None,
    rules: RoundRules,
) -> dict[str, Any]:
    """Wait on ``ids`` through the running loop's shared poller for ``kind`` until ``rules`` return an
    event (a final read error is an ``error`` event, a passed ``end_time`` a ``timeout`` one)."""
    left = None if end_time is None else end_time - time.time()
    if left is not None and left <= 0:  # no read, no poller made
        return rules.timeout_event()
    poller = shared_poller(graph_conn_id, api_version, kind)
    async with poller.subscribe(ids, interval) as member:
        try:
            # One deadline for the whole wait: no timer object per round, kept alive for a round by
            # each of hundreds of triggers (every object that outlives a young collection brings
            # the next full collection of the triggerer's heap closer).
            async with timeout(left):
                while True:
                    event = _decide(await member.next_round(), rules, poller.scrub)
                    if event is not None:
                        return event
        except TimeoutError:
            return rules.timeout_event()


def _decide(got: Round, rules: RoundRules, scrub: Callable[[Any], str] | None) -> dict[str, Any] | None:
    """One round for one waiter (the round is dropped on return: nothing of it is kept until the next)."""
    if got.error is not None:
        if got.retry_in is None:
            return rules.error_event(got.error, scrub)
        rules.read_failed(got.error, got.retry_in, scrub)
        return None
    return rules.check(got.objects, got.missing)
