"""Standard batch entry outcomes: the one home for "settled, not done, ambiguous".

After each call every entry it carried gets an :class:`Outcome`:

- ``DONE``: settled for this try: Graph's answer (success or a definite error) or a synthetic
  error entry (504 ``BatchEntryAmbiguous``, 424 ``BatchDependencyFailed``, ...);
- ``RETRY``: not done (a ``null`` answer, throttling, or an uncertain answer of a repeatable entry):
  sent again in a later round, counting an attempt;
- ``REQUEUE``: not sent, or dropped because a dependency in its call was not done: sent again
  without counting an attempt.

:class:`BatchLedger` applies them to the run's state (results, attempts, errors) and keeps the
:mod:`journal <airflow_fb_async.hooks.batch_journal>` letters in step, saving before each call goes
out and after its outcome is merged.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_fb_async.hooks.batch_journal import (
    AMBIGUOUS,
    IN_FLIGHT,
    PENDING,
    SUCCEEDED,
    BatchJournal,
    build_state,
    fingerprint,
    parse_state,
)
from airflow_fb_async.hooks.retry import THROTTLE_CODES, is_uncertain_status

if TYPE_CHECKING:
    from airflow_fb_async.hooks.batch_validate import BatchEntry

DONE = "done"
RETRY = "retry"
REQUEUE = "requeue"
AMBIGUOUS_TYPE = "BatchEntryAmbiguous"
DEPENDENCY_FAILED_TYPE = "BatchDependencyFailed"
INCOMPLETE_TYPE = "BatchEntryIncomplete"


@dataclass(slots=True)
class Outcome:
    """What one call did for one entry (see the module docstring for the kinds)."""

    kind: str
    result: dict[str, Any] | None = None


# --------------------------------------------------------------------------------------------------
# Result entries
# --------------------------------------------------------------------------------------------------


def error_entry(
    code: int, message: str, type_: str, graph_code: int | None = None, **extra: Any
) -> dict[str, Any]:
    """A synthetic per-entry error shaped like Graph's (``body.error`` envelope)."""
    error: dict[str, Any] = {"message": message, "type": type_, "code": graph_code}
    error.update(extra)
    return {"code": code, "headers": {}, "body": {"error": error}}


def entry_failed(result: Mapping[str, Any] | None) -> bool:
    """True when a result entry is an error (code 0 or >= 400)."""
    if result is None:
        return True
    code = result.get("code")
    return not isinstance(code, int) or code == 0 or code >= 400


def graph_error(body: Any) -> Mapping[str, Any] | None:
    """The ``error`` envelope of an entry body, if it is one."""
    if type(body) is dict or isinstance(body, Mapping):
        error = body.get("error")
        if error is not None and (type(error) is dict or isinstance(error, Mapping)):
            return error
    return None


def is_ambiguous(result: Mapping[str, Any] | None) -> bool:
    """True for a 504 ``BatchEntryAmbiguous`` entry (may have taken effect: never resent)."""
    err = graph_error(result.get("body")) if result is not None else None
    return err is not None and err.get("type") == AMBIGUOUS_TYPE


def ambiguous_entry(entry: BatchEntry, why: str) -> dict[str, Any]:
    """504 ``BatchEntryAmbiguous``: a non-repeatable write whose outcome is unknown."""
    return error_entry(
        504,
        f"{why}: this {entry.method} may or may not have taken effect, so it was not resent; "
        "check before retrying",
        AMBIGUOUS_TYPE,
    )


def dependency_failed_entry(dep: BatchEntry) -> dict[str, Any]:
    """424 ``BatchDependencyFailed``: not sent because ``dep`` did not succeed."""
    return error_entry(424, f"not sent: its dependency {dep.label} did not succeed", DEPENDENCY_FAILED_TYPE)


def incomplete_entry(attempts: int) -> dict[str, Any]:
    """503 ``BatchEntryIncomplete``: still not done after ``attempts`` attempts."""
    return error_entry(
        503,
        f"batch entry did not complete after {attempts} attempts",
        INCOMPLETE_TYPE,
        2,
        is_transient=True,
    )


def headers_to_dict(raw: Any) -> dict[str, str]:
    """Entry headers (Graph's ``[{"name", "value"}]``, ``"Name: value"`` strings or a dict) as a dict."""
    out: dict[str, str] = {}
    if type(raw) is not list and isinstance(raw, Mapping):
        return {str(k): str(v) for k, v in raw.items()}
    if isinstance(raw, list):
        for item in raw:
            if (type(item) is dict or isinstance(item, Mapping)) and "name" in item:
                value = item.get("value")
                out[str(item["name"])] = value if isinstance(value, str) else json.dumps(value)
            elif isinstance(item, str) and ":" in item:
                key, _, value = item.partition(":")
                out[key.strip()] = value.strip()
    return out


_JSON_OPEN = frozenset("{[")
_JSON_CLOSE = frozenset("}]")
# json.loads without its per-call steps (argument checks, two whitespace regex matches): the C
# scanner it ends in, called directly. Hot: every entry body of every call. (The decoder sets
# ``scan_once`` in its __init__; typeshed does not declare it.)
_scan_json: Callable[[str, int], tuple[Any, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


def parse_body(raw: Any) -> Any:
    """An entry body: Graph sends JSON as a string (not JSON: the text itself)."""
    if isinstance(raw, str):
        if raw[:1] in _JSON_OPEN and raw[-1:] in _JSON_CLOSE:
            # An object or array filling the whole text: what json.loads returns for it, faster.
            try:
                value, end = _scan_json(raw, 0)
                if end == len(raw):
                    return value
            except (StopIteration, ValueError):
                pass
        if not raw or raw.isspace():
            return None
        try:
            return json.loads(raw)
        except ValueError:
            return raw
    return raw


# --------------------------------------------------------------------------------------------------
# Classifying answers
# --------------------------------------------------------------------------------------------------


def unknown_outcome(entry: BatchEntry, why: str) -> Outcome:
    """An entry that may or may not have run: repeatable ones are sent again, the others are 504."""
    if entry.repeatable:
        return Outcome(RETRY, None)
    return Outcome(DONE, ambiguous_entry(entry, why))


def classify_answer(entry: BatchEntry, result: dict[str, Any]) -> Outcome:
    """The outcome of Graph's answer for one entry.

    Throttled: not done (sent again, whatever the method). Uncertain (5xx, codes 1 / 2,
    ``is_transient``): sent again when repeatable, else 504 ambiguous (the answer does not prove it
    did not run: Graph may have committed it). Anything else is settled.
    """
    code = int(result.get("code") or 0)
    err = graph_error(result.get("body"))
    if err is None and code < 500:  # hot: an answer that is not an error envelope
        return Outcome(DONE, result)
    graph_code = err.get("code") if err is not None else None
    graph_code = graph_code if isinstance(graph_code, int) else None
    if graph_code in THROTTLE_CODES:
        return Outcome(RETRY, result)
    transient = bool(err.get("is_transient")) if err is not None else False
    if code >= 500 or (err is not None and is_uncertain_status(None, graph_code, transient)):
        if entry.repeatable:
            return Outcome(RETRY, result)
        message = str(err.get("message") or "") if err is not None else ""
        why = f"Graph answered code {code}" + (f" ({message})" if message else "")
        return Outcome(DONE, ambiguous_entry(entry, why))
    return Outcome(DONE, result)


# --------------------------------------------------------------------------------------------------
# The run's state
# --------------------------------------------------------------------------------------------------


class BatchLedger:
    """Results, attempts and journal letters of one batch run (thread-safe where it must be)."""

    def __init__(
        self, entries: Sequence[BatchEntry], max_rounds: int, journal: BatchJournal | None = None
    ) -> None:
        n = len(entries)
        self.entries = entries
        self.max_rounds = max_rounds
        self.journal = journal
        self.results: list[dict[str, Any] | None] = [None] * n
        self.done = [False] * n
        self.settled = 0  # how many of ``done`` are True (kept as a count: read after every call)
        self.attempts = [0] * n
        self.errors = 0
        self.restored = 0
        self._letters = [PENDING] * n
        self._stored: dict[str, list[Any]] = {}  # str(index) -> [code, body] of succeeded entries
        self._fp = fingerprint(entries) if journal is not None else ""
        self._lock = threading.Lock()

    # ---- journal -------------------------------------------------------------------------------

    def restore(self) -> int:
        """Apply what an earlier try saved; returns how many entries it settled."""
        if self.journal is None:
            return 0
        parsed = parse_state(self.journal.load(), self._fp, len(self.entries))
        if parsed is None:
            return 0
        letters, stored = parsed
        for i, letter in enumerate(letters):
            entry = self.entries[i]
            if letter == SUCCEEDED:
                self.finish(i, stored[i])
            elif letter == AMBIGUOUS:
                self.finish(i, ambiguous_entry(entry, "an earlier try could not tell whether it ran"))
            elif letter == IN_FLIGHT and not entry.repeatable:
                self.finish(i, ambiguous_entry(entry, "it was in flight when an earlier try stopped"))
        self.restored = sum(self.done)
        return self.restored

    def save(self) -> None:
        if self.journal is None:
            return
        with self._lock:
            self.journal.save(build_state(self._fp, self._letters, self._stored))

    def mark_in_flight(self, ids: Iterable[int]) -> None:
        """Record that ``ids`` are about to be sent (before the call goes out)."""
        if self.journal is None:
            return
        with self._lock:
            for i in ids:
                self._letters[i] = IN_FLIGHT
        self.save()

    # ---- outcomes ------------------------------------------------------------------------------

    def succeeded(self, index: int) -> dict[str, Any] | None:
        """The successful result of a finished entry, or None."""
        result = self.results[index]
        return result if self.done[index] and not entry_failed(result) else None

    def finish(self, index: int, result: dict[str, Any]) -> None:
        """Settle an entry for this run (its journal letter follows: S, A, or resend next try)."""
        with self._lock:
            self._finish(index, result)

    def _finish(self, index: int, result: dict[str, Any]) -> None:
        """:meth:`finish`, the lock held."""
        self.results[index] = result
        if not self.done[index]:
            self.done[index] = True
            self.settled += 1
        if entry_failed(result):
            self.errors += 1
            self._letters[index] = AMBIGUOUS if is_ambiguous(result) else PENDING
        else:
            self._letters[index] = SUCCEEDED
            if self.journal is not None:
                self._stored[str(index)] = [result.get("code"), result.get("body")]

    def merge(self, outcomes: Mapping[int, Outcome]) -> bool:
        """Apply one call's outcomes and save; True when something has to be sent again."""
        retry = False
        with self._lock:  # once per call, not per entry
            for i, out in outcomes.items():
                if out.kind == DONE and out.result is not None:
                    self._finish(i, out.result)
                    continue
                retry = True
                self._letters[i] = PENDING
                if out.kind == RETRY:
                    self.attempts[i] += 1
                    if self.attempts[i] >= self.max_rounds:
                        self._finish(i, out.result or incomplete_entry(self.attempts[i]))
        self.save()
        return retry

    def partial(self, output: Callable[[int], dict[str, Any]]) -> list[dict[str, Any] | None]:
        """Results so far, in input order (None for entries not settled)."""
        return [output(i) if self.done[i] else None for i in range(len(self.entries))]
