"""Waiting on async request sets: one round check, one finish rule, one cancel loop for every waiter.

The trigger (deferrable), the sensor (poke / reschedule) and ``SubmitAsyncBatchOperator``'s
non-deferrable ``wait_for_completion`` differ only in how they read and sleep. What they decide is
:class:`SetWait`'s:

- **round check** (:meth:`SetWait.check`): record a read of the pending sets, log progress (on change,
  otherwise every :data:`~airflow_fb_async.waiting.progress.QUIET_LOG_INTERVAL` s), and end the wait
  when every set is completed;
- **missing sets**: a set that Graph leaves out of its answer, or names as non-existent (code 803),
  ends the wait at once with an ``error`` event "request set(s) not found: ..." (a set id does not
  come back: waiting on would last until the timeout, or forever without one);
- **finish rule** (:meth:`SetWait.finish_event`): ``success`` with the counts, or ``error`` when
  ``fail_on_request_errors`` and a request ended in error;
- events become results or :class:`~airflow_fb_async.exceptions.AsyncRequestSetError` through
  :func:`~airflow_fb_async.waiting.events.event_result` in every waiter alike;
- **cancel loop** (:func:`cancel_sets` / :func:`acancel_sets`): cancel each pending set, log each
  failure without stopping.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Protocol

from airflow_fb_async.hooks.set_fields import DEFAULT_SET_FIELDS
from airflow_fb_async.hooks.statuses import set_is_completed
from airflow_fb_async.waiting.errors import describe_error, is_retryable, nonexistent_ids, retry_delay
from airflow_fb_async.waiting.events import (
    describe_totals,
    event_result,
    make_event,
    request_errors_message,
)
from airflow_fb_async.waiting.poller import PollKind
from airflow_fb_async.waiting.progress import ProgressTracker

#: What the shared poller reads for request sets, and when a set needs no more reads.
REQUEST_SET_KIND = PollKind("request_set", DEFAULT_SET_FIELDS, set_is_completed)
#: Sets named in one message before "and N more".
MAX_NAMED = 10


#: The waiter's own logger (``self.log``: stdlib for triggers, structlog for task code), so each
#: line lands in the task's log. Only ``info``, ``warning`` and ``error`` with %-style args are used.
Logger = Any


class SetReader(Protocol):
    """The sync hook, as far as a synchronous waiter needs it."""

    def get_request_sets(
        self, set_ids: Iterable[str], fields: Iterable[str] | None = None
    ) -> dict[str, Any]: ...

    def scrub(self, text: Any) -> str: ...


def _read_sets(hook: SetReader, set_ids: list[str]) -> dict[str, Mapping[str, Any]]:
    got = hook.get_request_sets(set_ids, fields=DEFAULT_SET_FIELDS) or {}
    return {str(k): v for k, v in got.items() if isinstance(v, Mapping)}


def name_ids(ids: Iterable[str]) -> str:
    """``"1, 2, 3"``, at most :data:`MAX_NAMED` of them, then ``" and N more"``."""
    ids = list(ids)
    text = ", ".join(ids[:MAX_NAMED])
    return text + (f" and {len(ids) - MAX_NAMED} more" if len(ids) > MAX_NAMED else "")


class SetWait:
    """The state and the decisions of one wait on request sets (see the module docstring)."""

    def __init__(
        self,
        set_ids: list[str],
        log: Logger,
        *,
        fail_on_request_errors: bool = False,
    ) -> None:
        self.set_ids = list(set_ids)
        self.log = log
        self.fail_on_request_errors = bool(fail_on_request_errors)
        self.tracker = ProgressTracker(self.set_ids)
        self.failures = 0
        self._last_failure_log: float | None = None

    @property
    def pending(self) -> list[str]:
        """Sets not yet seen completed."""
        return self.tracker.pending

    def summary(self) -> dict[str, dict[str, int]]:
        return self.tracker.summary()

    # -- the round check -------------------------------------------------------------------------

    def check(
        self, raw: Mapping[str, Mapping[str, Any]], missing: Iterable[str] = ()
    ) -> dict[str, Any] | None:
        """One round: ``raw`` is Graph's answer for the pending sets (``missing``: ids it named as
        non-existent). Returns the final event when the wait is over, else None."""
        self.failures = 0
        pending, named = self.pending, set(missing)
        gone = [sid for sid in pending if sid not in raw or sid in named]
        newly = self.tracker.update({sid: raw[sid] for sid in pending if sid not in gone})
        if gone:
            message = f"request set(s) not found: {name_ids(gone)}"
            self.log.error("%s", message)
            return make_event("error", message, self.summary())
        for line in self.tracker.lines(newly):
            self.log.info("%s", line)
        return None if self.pending else self.finish_event()

    def read_failed(self, exc: BaseException, retry_in: float, scrub: Callable[[Any], str] | None) -> None:
        """A read failed and is being ridden out: log it (the first of a streak, then at most every
        ``quiet_interval`` seconds)."""
        self.failures += 1
        now = time.monotonic()
        last = self._last_failure_log
        if self.failures == 1 or last is None or now - last >= self.tracker.quiet_interval:
            self._last_failure_log = now
            self.log.warning(
                "Reading request sets failed (%s); attempt %d, retrying in %.1fs",
                describe_error(exc, scrub),
                self.failures,
                retry_in,
            )

    # -- how a wait ends -------------------------------------------------------------------------

    def finish_event(self) -> dict[str, Any]:
        """Every set completed: the finish rule on the counts."""
        return finish_event(self.summary(), self.fail_on_request_errors, self.log)

    def timeout_event(self) -> dict[str, Any]:
        summary, pending = self.summary(), self.pending
        message = (
            f"end time passed with {len(pending)} of {len(self.set_ids)} request set(s) not completed "
            f"({name_ids(pending)}); {describe_totals(summary)}"
        )
        self.log.error("Timeout: %s", message)
        return make_event("timeout", message, summary)

    def error_event(self, exc: BaseException, scrub: Callable[[Any], str] | None = None) -> dict[str, Any]:
        message = f"reading request sets failed: {describe_error(exc, scrub)}"
        self.log.error("%s", message)
        return make_event("error", message, self.summary())

    # -- synchronous waiters (sensor, submit operator) -------------------------------------------

    def poll_once(self, hook: SetReader) -> dict[str, Any] | None:
        """Read the pending sets once (50 per call) and :meth:`check` them. Read errors propagate,
        except Graph naming sets as non-existent: the missing-set rule (the others are read again,
        so the event's counts are current)."""
        pending = self.pending
        try:
            raw = _read_sets(hook, pending)
        except Exception as exc:
            gone = nonexistent_ids(exc, pending)
            if not gone:
                raise
            rest = [sid for sid in pending if sid not in gone]
            return self.check(_read_sets(hook, rest) if rest else {}, gone)
        return self.check(raw)

    def try_poll(self, hook: SetReader, interval: float) -> tuple[dict[str, Any] | None, float]:
        """:meth:`poll_once`, riding out retryable errors: ``(final event or None, seconds to wait
        before the next read)``. A final read error becomes an ``error`` event."""
        try:
            return self.poll_once(hook), interval
        except Exception as exc:
            delay = retry_delay(exc, self.failures + 1, interval) if is_retryable(exc) else None
            if delay is None:
                return self.error_event(exc, hook.scrub), interval
            self.read_failed(exc, delay, hook.scrub)
            return None, delay

    def wait_sync(
        self,
        hook: SetReader,
        interval: float,
        timeout: float | None,
    ) -> dict[str, dict[str, int]]:
        """Poll on a worker until done (the submit operator's non-deferrable wait): returns the summary
        or raises :class:`AsyncRequestSetError`, exactly as the trigger's event would."""
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = interval
        while True:
            if deadline is not None and time.monotonic() + delay > deadline:
                time.sleep(max(deadline - time.monotonic(), 0.0))
                return event_result(self.timeout_event())
            time.sleep(delay)
            event, delay = self.try_poll(hook, interval)
            if event is not None:
                return event_result(event)


def finish_event(
    summary: dict[str, dict[str, int]], fail_on_request_errors: bool, log: Logger
) -> dict[str, Any]:
    """The finish rule: ``success`` with the counts, or ``error`` when a request ended in error and
    ``fail_on_request_errors`` says that fails the wait."""
    problem = request_errors_message(summary) if fail_on_request_errors else None
    if problem:
        log.error("%s", problem)
        return make_event("error", problem, summary)
    message = f"All request sets completed: {describe_totals(summary)}"
    log.info("%s", message)
    return make_event("success", message, summary)


def settle(event: Any, fail_on_request_errors: bool, log: Logger) -> dict[str, dict[str, int]]:
    """An ``execute_complete``'s whole job: validate the trigger's event and return its summary, or
    raise :class:`AsyncRequestSetError`; the finish rule is applied again to a ``success`` (an event
    of an older trigger may not have applied it)."""
    return event_result(finish_event(event_result(event), fail_on_request_errors, log))


# --------------------------------------------------------------------------------------------------
# the cancel loop
# --------------------------------------------------------------------------------------------------


def cancel_sets(
    cancel: Callable[[str], Any], set_ids: list[str], log: Logger, scrub: Any = None
) -> list[str]:
    """Cancel each set (the sync hook's ``cancel``); a failure is logged and the loop goes on.
    Returns the ids canceled."""
    done: list[str] = []
    _cancel_start(log, set_ids)
    for set_id in set_ids:
        try:
            cancel(set_id)
        except Exception as exc:
            _cancel_failed(log, set_id, exc, scrub)
        else:
            done.append(set_id)
    return done


async def acancel_sets(
    cancel: Callable[[str], Awaitable[Any]], set_ids: list[str], log: Logger, scrub: Any = None
) -> list[str]:
    """:func:`cancel_sets` with the async hook's ``cancel`` (the trigger's ``on_kill``)."""
    done: list[str] = []
    _cancel_start(log, set_ids)
    for set_id in set_ids:
        try:
            await cancel(set_id)
        except Exception as exc:
            _cancel_failed(log, set_id, exc, scrub)
        else:
            done.append(set_id)
    return done


def _cancel_start(log: Logger, set_ids: list[str]) -> None:
    if set_ids:
        log.warning("Task killed: canceling %d request set(s): %s", len(set_ids), name_ids(set_ids))


def _cancel_failed(log: Logger, set_id: str, exc: BaseException, scrub: Any) -> None:
    log.warning("Canceling request set %s failed: %s", set_id, describe_error(exc, scrub))
