"""Deferrable waiting on async batch request sets.

:class:`AsyncRequestSetTrigger` polls any number of request sets with the async hook's multi-id
read (``GET /?ids=...``, 50 sets a call), drops completed sets from later rounds, backs off on
transient errors and throttling, and fires exactly one event:

``{"status": "success" | "error" | "timeout", "message": str,
   "request_sets": {set_id: {"total_count", "success_count", "error_count", "canceled_count"}}}``

:func:`summarize_sets` and :func:`event_result` are shared by every waiter (the sensor, the submit
operator's ``wait_for_completion``), so they all report and fail the same way.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any

from airflow_fb_async._compat import BaseTrigger, TriggerEvent
from airflow_fb_async.exceptions import AsyncRequestSetError, GraphAPIError, GraphInputError
from airflow_fb_async.hooks.statuses import SET_COUNT_FIELDS, set_count, set_is_completed
from airflow_fb_async.literals import parse_literal

#: Event statuses; nothing else is ever emitted.
EVENT_STATUSES = ("success", "error", "timeout")
#: Counts kept in summaries, events and XComs.
SUMMARY_FIELDS = ("total_count", "success_count", "error_count", "canceled_count")
#: Fields read on every poll.
SET_FIELDS = ("id", "name", "is_completed", *SET_COUNT_FIELDS)
#: The Graph multi-id read takes at most this many ids.
#: Upper bound of the back-off after errors, whatever the poll interval.
MAX_ERROR_BACKOFF = 300.0
#: Upper bound of the random delay before a trigger's first read.
MAX_START_JITTER = 2.0
#: Per-set progress lines per round before the log says "and N more".
_MAX_SET_LINES = 10

_ID_RE = re.compile(r"^[0-9]+$")
_URL_RE = re.compile(r"\b[a-z][a-z0-9+.-]*://\S+", re.IGNORECASE)
_SECRET_PARAM_RE = re.compile(
    r"(access_token|appsecret_proof|token|password|client_secret)=[^&\s\"']*", re.IGNORECASE
)
_BEARER_RE = re.compile(r"\b(OAuth|Bearer)\s+\S+", re.IGNORECASE)
_LONG_WORD_RE = re.compile(r"\b[A-Za-z0-9_\-]{40,}\b")


# --------------------------------------------------------------------------------------------------
# ids, summaries, events
# --------------------------------------------------------------------------------------------------


def normalize_ids(value: Any, what: str = "request_set_ids", noun: str = "request set id") -> list[str]:
    """Turn one id, a list of ids, a rendered string (JSON list, Python list repr, comma list) or a
    request set summary ``{set_id: {counts}}`` into a de-duplicated list of digit-string ids.

    The one id-list parser of the package: the sensor, the trigger, the results and cancel operators
    all read their ids with it, so every XCom of ``SubmitAsyncBatchOperator`` (the id list, the
    ``wait_for_completion`` summary, the list of lists of a mapped submit) works as is everywhere.
    Raises :class:`GraphInputError` naming ``what`` and the offending item (before any HTTP call).
    """
    flat: list[str] = []

    def bad(label: str, item: Any) -> GraphInputError:
        return GraphInputError(f"{label}: {_short(item)} is not a {noun} (expected a string of digits)")

    def add(item: Any, label: str, depth: int) -> None:
        if depth > 3:
            raise GraphInputError(f"{what}: nested too deeply: {_short(value)}")
        if isinstance(item, bool) or item is None:
            raise bad(label, item)
        if isinstance(item, int):
            if item <= 0:
                raise bad(label, item)
            flat.append(str(item))
            return
        if isinstance(item, str):
            text = item.strip()
            if text.startswith(("[", "(", "{")):
                add(_parse_list_text(text, what), label, depth + 1)
                return
            if "," in text:
                for index, part in enumerate(text.split(",")):
                    add(part, f"{label}[{index}]", depth + 1)
                return
            text = text.strip("'\" ")
            if not _ID_RE.match(text):
                raise bad(label, item)
            flat.append(text)
            return
        if isinstance(item, Mapping) and item and all(isinstance(v, Mapping) for v in item.values()):
            item = list(item)  # a summary {set_id: counts}: its keys are the ids
        if isinstance(item, Iterable) and not isinstance(item, (bytes, Mapping)):
            for index, sub in enumerate(item):
                add(sub, f"{label}[{index}]", depth + 1)
            return
        raise GraphInputError(
            f"{label}: expected an id, a string or a list of ids, or a request set summary "
            f"{{set_id: counts}}, got {type(item).__name__}: {_short(item)}"
        )

    if value is None or (isinstance(value, str) and not value.strip()):
        raise GraphInputError(f"{what} is empty (got {value!r}): give at least one {noun}")
    add(value, what, 0)
    ids = list(dict.fromkeys(flat))
    if not ids:
        raise GraphInputError(f"{what} is empty (got {_short(value)}): give at least one {noun}")
    return ids


def normalize_set_ids(value: Any) -> list[str]:
    """:func:`normalize_ids` for ``request_set_ids``."""
    return normalize_ids(value)


def _parse_list_text(text: str, what: str = "request_set_ids") -> Any:
    try:
        return parse_literal(text)
    except ValueError:
        raise GraphInputError(f"{what}: cannot parse {_short(text)} as a list of ids") from None


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


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


def make_event(status: str, message: str, summary: Mapping[str, Mapping[str, int]]) -> dict[str, Any]:
    """Build an event payload (plain JSON, the only shape any waiter emits)."""
    if status not in EVENT_STATUSES:
        raise ValueError(f"unknown event status {status!r}")
    return {
        "status": status,
        "message": str(message),
        "request_sets": {
            str(k): {f: set_count(v.get(f)) for f in SUMMARY_FIELDS} for k, v in summary.items()
        },
    }


def event_result(event: Any) -> dict[str, dict[str, int]]:
    """Validate a trigger event; return its summary on ``success``.

    Raises :class:`AsyncRequestSetError` (with ``status``, ``request_sets`` and the message) on
    ``error`` and ``timeout`` events, and on anything that is not a well-formed event.
    """
    if not isinstance(event, Mapping):
        raise AsyncRequestSetError(
            f"malformed request set event: expected a dict, got {type(event).__name__}"
        )
    status = event.get("status")
    message = event.get("message")
    sets = event.get("request_sets")
    problems = []
    if status not in EVENT_STATUSES:
        problems.append(f"status {_short(status)} is not one of {', '.join(EVENT_STATUSES)}")
    if not isinstance(message, str):
        problems.append("message is missing or not a string")
    summary: dict[str, dict[str, int]] = {}
    if not isinstance(sets, Mapping):
        problems.append("request_sets is missing or not a dict")
    else:
        for set_id, counts in sets.items():
            if not isinstance(counts, Mapping) or any(
                not isinstance(counts.get(f), int) or isinstance(counts.get(f), bool) for f in SUMMARY_FIELDS
            ):
                problems.append(f"request_sets[{_short(set_id)}] lacks integer counts {SUMMARY_FIELDS}")
                break
            summary[str(set_id)] = {f: int(counts[f]) for f in SUMMARY_FIELDS}
    if problems:
        err = AsyncRequestSetError("malformed request set event: " + "; ".join(problems))
        err.status = "malformed"  # type: ignore[attr-defined]
        err.request_sets = summary  # type: ignore[attr-defined]
        raise err
    if status == "success":
        return summary
    label = "timed out" if status == "timeout" else "failed"
    text = f"Waiting on async request sets {label}: {message}"
    if summary and describe_totals(summary) not in str(message):
        text += f" [{describe_totals(summary)}]"
    err = AsyncRequestSetError(text)
    err.status = status  # type: ignore[attr-defined]
    err.request_sets = summary  # type: ignore[attr-defined]
    raise err


def scrub_text(text: str, secrets: Iterable[str] = (), limit: int = 200) -> str:
    """Best-effort removal of anything secret-looking from an error text (URLs, token params,
    Authorization values, long opaque words, the given secrets), truncated to ``limit``."""
    out = str(text)
    for secret in secrets:
        if secret:
            out = out.replace(secret, "***")
    out = _URL_RE.sub("<url>", out)
    out = _SECRET_PARAM_RE.sub(r"\1=***", out)
    out = _BEARER_RE.sub(r"\1 ***", out)
    out = _LONG_WORD_RE.sub("***", out)
    out = " ".join(out.split())
    return out if len(out) <= limit else out[: limit - 3] + "..."


def describe_error(exc: BaseException, scrub: Any = None) -> str:
    """Short, token-free description of an error: its type and Graph code, plus a scrubbed message."""
    name = type(exc).__name__
    if isinstance(exc, GraphAPIError):
        head = f"{name} (code {exc.code}"
        if exc.error_subcode:
            head += f"/{exc.error_subcode}"
        if exc.type:
            head += f", {exc.type}"
        if exc.status_code is not None:
            head += f", HTTP {exc.status_code}"
        head += ")"
        raw = exc.message or ""
    else:
        head = name
        raw = str(exc)
    if scrub is not None:
        try:
            raw = scrub(raw)
        except Exception:
            raw = ""
    msg = scrub_text(raw)
    return f"{head}: {msg}" if msg else head


def is_retryable(exc: BaseException) -> bool:
    """Errors a waiter rides out with back-off (the hook has already spent its own retries)."""
    from airflow_fb_async import exceptions as errors

    retryable: tuple[type[BaseException], ...] = tuple(
        cls
        for cls in (
            getattr(errors, "GraphTransientError", None),
            getattr(errors, "GraphThrottledError", None),
            getattr(errors, "GraphAmbiguousError", None),  # a GET whose answer got lost
        )
        if cls is not None
    )
    if isinstance(exc, retryable):
        return True
    if isinstance(exc, getattr(errors, "GraphAuthError", ())):
        return False
    if isinstance(exc, GraphAPIError):
        return bool(exc.is_transient) or (exc.status_code is not None and exc.status_code >= 500)
    # Raw transport errors that escaped the hook (it should wrap them): ride them out too.
    return isinstance(exc, (OSError, asyncio.TimeoutError)) or type(exc).__module__.startswith("httpx")


def error_backoff(
    attempt: int, base: float, cap: float = MAX_ERROR_BACKOFF, retry_after: Any = None
) -> float:
    """Delay after the ``attempt``-th consecutive failed poll: exponential from ``base``, capped,
    with up to 20 % jitter below; at least ``retry_after`` (a throttle's announced wait)."""
    base = max(float(base), 0.01)
    delay = min(base * (2 ** min(max(attempt - 1, 0), 16)), cap)
    delay *= random.uniform(0.8, 1.0)
    try:
        if retry_after is not None:
            delay = max(delay, min(float(retry_after), cap))
    except (TypeError, ValueError):
        pass
    return delay


class ProgressTracker:
    """Turns successive reads into progress lines: per set and overall, with a rate and an ETA."""

    def __init__(self, set_ids: list[str]) -> None:
        self.set_ids = list(set_ids)
        self.latest: dict[str, dict[str, int]] = {}
        self.completed: set[str] = set()
        self.changed: list[str] = []
        self._first: tuple[float, int] | None = None

    def update(self, raw: Mapping[str, Mapping[str, Any]]) -> list[str]:
        """Record a round of raw sets; return the ids that completed in it (``changed`` lists the sets
        whose counts moved)."""
        newly: list[str] = []
        self.changed = []
        for set_id, data in raw.items():
            counts = {f: set_count(data.get(f)) for f in SET_COUNT_FIELDS}
            if self.latest.get(set_id) != counts:
                self.changed.append(set_id)
            self.latest[set_id] = counts
            if set_is_completed(data) and set_id not in self.completed:
                self.completed.add(set_id)
                newly.append(set_id)
        processed = self.processed()
        if self._first is None:
            self._first = (time.monotonic(), processed)
        return newly

    @property
    def pending(self) -> list[str]:
        return [sid for sid in self.set_ids if sid not in self.completed]

    def processed(self) -> int:
        return sum(
            c.get("success_count", 0) + c.get("error_count", 0) + c.get("canceled_count", 0)
            for c in self.latest.values()
        )

    def summary(self) -> dict[str, dict[str, int]]:
        """Counts for every set id (zeros for a set never read)."""
        return {sid: {f: self.latest.get(sid, {}).get(f, 0) for f in SUMMARY_FIELDS} for sid in self.set_ids}

    def set_line(self, set_id: str) -> str:
        c = self.latest.get(set_id, {})
        state = "completed" if set_id in self.completed else "running"
        return (
            f"request set {set_id} {state}: {c.get('success_count', 0)} succeeded, "
            f"{c.get('error_count', 0)} failed, {c.get('canceled_count', 0)} canceled, "
            f"{c.get('in_progress_count', 0)} in progress, {c.get('initial_count', 0)} waiting "
            f"of {c.get('total_count', 0)}"
        )

    def overall_line(self) -> str:
        total = sum(c.get("total_count", 0) for c in self.latest.values())
        processed = self.processed()
        t = totals(self.summary())
        line = (
            f"{len(self.completed)}/{len(self.set_ids)} request set(s) done; requests: "
            f"{t['success_count']} succeeded, {t['error_count']} failed, {t['canceled_count']} canceled "
            f"of {total}"
        )
        if self._first is not None:
            elapsed = time.monotonic() - self._first[0]
            done_since = processed - self._first[1]
            if elapsed > 0 and done_since > 0:
                rate = done_since / elapsed
                remaining = max(total - processed, 0)
                line += f"; {rate:.1f} requests/s"
                if remaining:
                    line += f", ETA {_fmt_duration(remaining / rate)}"
        return line

    def lines(self, newly_completed: list[str]) -> list[str]:
        """Progress lines for one round: each set that completed or moved (capped; unchanged sets are
        not repeated), then the overall line (always)."""
        moved = list(dict.fromkeys([*newly_completed, *self.changed]))
        out = [self.set_line(sid) for sid in moved[:_MAX_SET_LINES]]
        if len(moved) > _MAX_SET_LINES:
            out.append(f"... and {len(moved) - _MAX_SET_LINES} more request set(s) moved")
        out.append(self.overall_line())
        return out


def _fmt_duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    minutes, sec = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{sec:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


# --------------------------------------------------------------------------------------------------
# The trigger
# --------------------------------------------------------------------------------------------------


class AsyncRequestSetTrigger(BaseTrigger):
    """Wait until every given async request set reports ``is_completed``.

    :param request_set_ids: the request set ids (one id or a list; digit strings).
    :param graph_conn_id: the Graph connection.
    :param api_version: Graph API version (default: the connection's).
    :param poll_interval: seconds between polls.
    :param end_time: absolute unix time after which a ``timeout`` event is fired; None waits forever.
    :param fail_on_request_errors: fire an ``error`` event (naming counts) when any request of the
        completed sets ended in error.
    :param cancel_on_kill: when a user kills the deferred task, cancel the sets not yet completed
        (Airflow's trigger ``on_kill``; not on triggerer restarts or timeouts).
    """

    def __init__(
        self,
        request_set_ids: list[str] | str,
        graph_conn_id: str = "facebook_graph_default",
        api_version: str | None = None,
        poll_interval: float = 30.0,
        end_time: float | None = None,
        fail_on_request_errors: bool = False,
        cancel_on_kill: bool = False,
    ) -> None:
        super().__init__()
        self.request_set_ids = normalize_set_ids(request_set_ids)
        self.graph_conn_id = graph_conn_id
        self.api_version = api_version
        self.poll_interval = float(poll_interval)
        if self.poll_interval < 0:
            raise ValueError("poll_interval must be >= 0")
        self.end_time = float(end_time) if end_time is not None else None
        self.fail_on_request_errors = bool(fail_on_request_errors)
        self.cancel_on_kill = bool(cancel_on_kill)
        self._tracker: ProgressTracker | None = None

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "request_set_ids": list(self.request_set_ids),
                "graph_conn_id": self.graph_conn_id,
                "api_version": self.api_version,
                "poll_interval": self.poll_interval,
                "end_time": self.end_time,
                "fail_on_request_errors": self.fail_on_request_errors,
                "cancel_on_kill": self.cancel_on_kill,
            },
        )

    def _hook(self) -> Any:
        from airflow_fb_async.hooks.graph import GraphAsyncHook

        return GraphAsyncHook(graph_conn_id=self.graph_conn_id, api_version=self.api_version)

    def _time_left(self) -> float | None:
        return None if self.end_time is None else self.end_time - time.time()

    async def run(self) -> AsyncIterator[TriggerEvent]:
        event = await self._wait()
        yield TriggerEvent(event)

    async def _wait(self) -> dict[str, Any]:
        tracker = self._tracker = ProgressTracker(self.request_set_ids)
        n_sets = len(self.request_set_ids)
        self.log.info(
            "Waiting on %d async request set(s) (poll every %.1fs%s)",
            n_sets,
            self.poll_interval,
            "" if self.end_time is None else f", until unix time {self.end_time:.0f}",
        )
        failures = 0
        scrub = None
        left = self._time_left()
        if left is not None and left <= 0:
            return self._timeout_event(tracker)
        # Spread the start of many triggers created at once (a triggerer picking up a batch):
        # their connection lookups and first reads would otherwise all run in one loop iteration.
        if not await self._sleep(random.uniform(0, min(self.poll_interval, MAX_START_JITTER))):
            return self._timeout_event(tracker)
        try:
            async with self._hook() as ahook:
                scrub = getattr(ahook, "scrub", None)
                while True:
                    left = self._time_left()
                    if left is not None and left <= 0:
                        return self._timeout_event(tracker)
                    try:
                        raw = await self._read_round(ahook, tracker.pending)
                    except Exception as exc:
                        if not is_retryable(exc):
                            return self._error_event(tracker, exc, scrub)
                        failures += 1
                        delay = error_backoff(
                            failures,
                            base=max(self.poll_interval, 0.05),
                            cap=max(self.poll_interval, MAX_ERROR_BACKOFF),
                            retry_after=getattr(exc, "retry_after", None),
                        )
                        self.log.warning(
                            "Reading request sets failed (%s); attempt %d, retrying in %.1fs",
                            describe_error(exc, scrub),
                            failures,
                            delay,
                        )
                        if not await self._sleep(delay):
                            return self._timeout_event(tracker)
                        continue
                    failures = 0
                    missing = [sid for sid in tracker.pending if sid not in raw]
                    if missing:
                        return make_event(
                            "error",
                            f"request set(s) not found: {', '.join(missing[:10])}"
                            + (f" and {len(missing) - 10} more" if len(missing) > 10 else ""),
                            tracker.summary(),
                        )
                    newly = tracker.update(raw)
                    for line in tracker.lines(newly):
                        self.log.info("%s", line)
                    if not tracker.pending:
                        return self._done_event(tracker)
                    if not await self._sleep(self.poll_interval):
                        return self._timeout_event(tracker)
        except Exception as exc:  # connection lookup, hook setup or teardown
            return self._error_event(tracker, exc, scrub)

    async def _read_round(self, ahook: Any, pending: list[str]) -> dict[str, dict[str, Any]]:
        got = await ahook.get_request_sets(pending, fields=list(SET_FIELDS))  # 50 ids per call
        return {str(key): dict(value) for key, value in (got or {}).items() if isinstance(value, Mapping)}

    async def _sleep(self, delay: float) -> bool:
        """Sleep ``delay`` seconds, or until end_time; False when end_time has passed."""
        left = self._time_left()
        if left is not None and left <= delay:
            await asyncio.sleep(max(left, 0))
            return False
        await asyncio.sleep(delay)
        return True

    def _done_event(self, tracker: ProgressTracker) -> dict[str, Any]:
        summary = tracker.summary()
        if self.fail_on_request_errors:
            problem = request_errors_message(summary)
            if problem:
                self.log.error("%s", problem)
                return make_event("error", problem, summary)
        message = f"All request sets completed: {describe_totals(summary)}"
        self.log.info("%s", message)
        return make_event("success", message, summary)

    def _timeout_event(self, tracker: ProgressTracker) -> dict[str, Any]:
        summary = tracker.summary()
        pending = tracker.pending
        message = (
            f"end time passed with {len(pending)} of {len(self.request_set_ids)} request set(s) "
            f"not completed ({', '.join(pending[:10])}{', ...' if len(pending) > 10 else ''}); "
            f"{describe_totals(summary)}"
        )
        self.log.error("Timeout: %s", message)
        return make_event("timeout", message, summary)

    def _error_event(self, tracker: ProgressTracker, exc: BaseException, scrub: Any) -> dict[str, Any]:
        message = f"reading request sets failed: {describe_error(exc, scrub)}"
        self.log.error("%s", message)
        return make_event("error", message, tracker.summary())

    async def on_kill(self) -> None:
        """Cancel the sets not yet completed when a user kills the task (``cancel_on_kill``)."""
        if not self.cancel_on_kill:
            return
        pending = self._tracker.pending if self._tracker is not None else list(self.request_set_ids)
        if not pending:
            return
        self.log.warning("Task killed: canceling %d request set(s)", len(pending))
        async with self._hook() as ahook:
            for set_id in pending:
                try:
                    await ahook.cancel(set_id)
                except Exception as exc:
                    self.log.warning(
                        "Canceling request set %s failed: %s",
                        set_id,
                        describe_error(exc, getattr(ahook, "scrub", None)),
                    )
