"""Process-wide throttle state fed by Graph's usage headers (sans-IO, thread-safe).

Graph reports usage on every response (and every standard-batch entry):

- ``X-App-Usage``: ``{"call_count", "total_cputime", "total_time"}`` in percent, for the whole app;
- ``X-Ad-Account-Usage``: ``{"acc_id_util_pct", "reset_time_duration", ...}`` for the ad account the
  call touched (the header does not name it: the caller passes the account it knows from the path);
- ``X-Business-Use-Case-Usage``: ``{"<object id>": [{"type", "call_count", "total_cputime",
  "total_time", "estimated_time_to_regain_access", ...}]}`` keyed by ad account / business id
  (without ``act_``).

The state is shared by every hook in the process (one :class:`_ThrottleStore`), so two tasks or two
threads hitting the same ad account slow down together. A :class:`ThrottleState` is a *view* on that
store bound to one connection's knobs (``regain_unit_seconds``, ``throttle_threshold``,
``backoff_base``, ``backoff_max``): ``hook.throttle`` is one.

Rules:
- ``estimated_time_to_regain_access`` (minutes) > 0 blocks the key for
  ``minutes x regain_unit_seconds`` seconds: every call touching it waits until then;
- usage >= ``throttle_threshold`` slows calls touching the key down proactively (a pause that grows
  from ``backoff_base`` at the threshold to ``10 x backoff_base`` at 100 %, capped by
  ``backoff_max``);
- usage > 75 % is logged at info (when the rounded value changes), every pause is logged at info;
- every wait is capped by ``max_wait`` (conn extra ``max_throttle_wait``, default
  :data:`MAX_THROTTLE_WAIT`, one hour): a longer announcement is slept in pieces, each retry counting
  against ``max_retries``, instead of parking a worker for days (or overflowing ``time.sleep``);
- malformed headers never raise: a value that is not a finite, non-negative number (``NaN``,
  ``Infinity``, ``1e400``, text, lists) counts as 0, as if Graph had not sent it.
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("airflow_fb_async.hooks.throttle")

APP_KEY = "__app__"
BUC_HEADER = "x-business-use-case-usage"
AD_ACCOUNT_HEADER = "x-ad-account-usage"
APP_HEADER = "x-app-usage"
USAGE_LOG_PCT = 75.0
# A usage reading older than this no longer slows anything down.
USAGE_TTL_SECONDS = 60.0
#: Default cap (seconds) of any throttle wait, whatever Graph announces (conn extra ``max_throttle_wait``).
MAX_THROTTLE_WAIT = 3600.0

_ACT_DIGITS_RE = re.compile(r"\d+")
_WORD_RE = re.compile(r"\w")


def account_key(account_id: str | int) -> str:
    """Normalise an ad account id (``act_123`` or ``123``) to the BUC key (``123``)."""
    text = str(account_id).strip()
    return text[4:] if text.startswith("act_") else text


def accounts_in(*texts: str | None) -> list[str]:
    """Ad account keys (``act_<digits>`` without the prefix) mentioned in paths / batch bodies."""
    found: list[str] = []
    for text in texts:
        if not text:
            continue
        # ``\bact_(\d+)`` by hand: str.find skips to each "act_" at C speed, where the regex walks
        # every position of a 4 KB batch text in its engine (hot: once per batch call).
        pos = text.find("act_")
        while pos >= 0:
            digits = _ACT_DIGITS_RE.match(text, pos + 4)
            at_boundary = pos == 0 or not _WORD_RE.match(text, pos - 1)
            if digits is not None and at_boundary and digits.group() not in found:
                found.append(digits.group())
            pos = text.find("act_", pos + 4)
    return found


def lower_headers(headers: Mapping[str, Any] | Iterable[Any] | None) -> dict[str, str]:
    """Accept a dict-like, or Graph's batch-entry list of ``{"name", "value"}``; lower-case names."""
    out: dict[str, str] = {}
    if headers is None:
        return out
    if isinstance(headers, Mapping) or hasattr(headers, "items"):
        items: Iterable[Any] = headers.items()
    else:
        items = headers
    for item in items:
        if isinstance(item, Mapping):
            name, value = item.get("name"), item.get("value")
        elif isinstance(item, tuple | list) and len(item) == 2:
            name, value = item
        else:
            continue
        if isinstance(name, str) and value is not None:
            out[name.lower()] = value if isinstance(value, str) else json.dumps(value)
    return out


def _json_header(value: str | None) -> Any:
    if not value:
        return None
    try:
        return json.loads(value)
    except (TypeError, ValueError):
        return None


def _num(value: Any) -> float:
    """A usage figure as a finite, non-negative float; 0.0 for anything else (never raises)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return 0.0
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return 0.0
    return number if math.isfinite(number) and number > 0 else 0.0


@dataclass(frozen=True)
class UsageReading:
    """What one response said about one key."""

    key: str
    usage_pct: float
    regain_minutes: float


def parse_usage_headers(
    headers: Mapping[str, Any] | Iterable[Any] | None, account_hint: str | None = None
) -> list[UsageReading]:
    """Pure parser of the three usage headers into per-key readings."""
    h = lower_headers(headers)
    readings: list[UsageReading] = []
    buc = _json_header(h.get(BUC_HEADER))
    if isinstance(buc, Mapping):
        for obj_id, entries in buc.items():
            if isinstance(entries, Mapping):
                entries = [entries]
            if not isinstance(entries, list):
                continue
            usage = 0.0
            regain = 0.0
            for entry in entries:
                if not isinstance(entry, Mapping):
                    continue
                usage = max(
                    usage,
                    _num(entry.get("call_count")),
                    _num(entry.get("total_cputime")),
                    _num(entry.get("total_time")),
                )
                regain = max(regain, _num(entry.get("estimated_time_to_regain_access")))
            readings.append(UsageReading(account_key(obj_id), usage, regain))
    acc = _json_header(h.get(AD_ACCOUNT_HEADER))
    if isinstance(acc, Mapping) and account_hint:
        readings.append(UsageReading(account_key(account_hint), _num(acc.get("acc_id_util_pct")), 0.0))
    app = _json_header(h.get(APP_HEADER))
    if isinstance(app, Mapping):
        usage = max(_num(app.get("call_count")), _num(app.get("total_cputime")), _num(app.get("total_time")))
        readings.append(UsageReading(APP_KEY, usage, 0.0))
    return readings


def regain_seconds(
    headers: Mapping[str, Any] | Iterable[Any] | None,
    regain_unit_seconds: float,
    keys: Iterable[str] | None = None,
    max_wait: float = MAX_THROTTLE_WAIT,
) -> float | None:
    """Seconds to wait per ``estimated_time_to_regain_access`` in these headers (None when unset),
    at most ``max_wait``.

    With ``keys``, only those BUC entries count (when any of them is present).
    """
    readings = [r for r in parse_usage_headers(headers) if r.regain_minutes > 0]
    if not readings:
        return None
    wanted = {account_key(k) for k in keys or ()}
    chosen = [r for r in readings if r.key in wanted] or readings
    return capped_wait(max(r.regain_minutes for r in chosen) * regain_unit_seconds, max_wait)


def capped_wait(seconds: float, max_wait: float = MAX_THROTTLE_WAIT) -> float:
    """``seconds`` clamped to ``[0, max_wait]``; a non-finite value (NaN) counts as 0."""
    if not math.isfinite(seconds):
        return max_wait if seconds > 0 else 0.0
    return min(max(seconds, 0.0), max_wait)


class _ThrottleStore:
    """The process-wide state: usage and blocks per key. Guarded by one lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        # key -> (usage pct, monotonic time observed, observed while blocked). A reading taken
        # while the key was blocked (regain > 0) does not slow calls down once the block is over.
        self.usage: dict[str, tuple[float, float, bool]] = {}
        # key -> monotonic time until which calls touching it must wait
        self.blocked_until: dict[str, float] = {}
        self.logged_pct: dict[str, int] = {}

    def clear(self) -> None:
        with self.lock:
            self.usage.clear()
            self.blocked_until.clear()
            self.logged_pct.clear()


_STORE = _ThrottleStore()


@dataclass(eq=False, kw_only=True)
class ThrottleState:
    """A connection's view of the process-wide throttle store (see module docstring): the
    connection's knobs, the clock, and the store (the process-wide one unless a test gives its own)."""

    regain_unit_seconds: float = 60.0
    throttle_threshold: float = 90.0
    backoff_base: float = 1.0
    backoff_max: float = 60.0
    max_wait: float = MAX_THROTTLE_WAIT
    clock: Callable[[], float] = time.monotonic
    store: _ThrottleStore = field(default_factory=lambda: _STORE)

    def observe(
        self, headers: Mapping[str, Any] | Iterable[Any] | None, account_id: str | None = None
    ) -> list[UsageReading]:
        """Feed the usage headers of one response or batch entry.

        ``headers`` is a mapping (any case) or Graph's batch list of ``{"name", "value"}``;
        ``account_id`` names the ad account for ``X-Ad-Account-Usage`` (which does not say).
        """
        parsed = parse_usage_headers(headers, account_hint=account_id)
        if not parsed:
            return parsed
        # One reading per key (BUC and X-Ad-Account-Usage may both speak of the same account).
        merged: dict[str, UsageReading] = {}
        for r in parsed:
            old = merged.get(r.key)
            merged[r.key] = (
                r
                if old is None
                else UsageReading(
                    r.key, max(old.usage_pct, r.usage_pct), max(old.regain_minutes, r.regain_minutes)
                )
            )
        readings = list(merged.values())
        now = self.clock()
        store = self.store
        to_log: list[tuple[str, float]] = []
        with store.lock:
            for r in readings:
                store.usage[r.key] = (r.usage_pct, now, r.regain_minutes > 0)
                if r.regain_minutes > 0:
                    until = now + self._regain_wait(r)
                    if until > store.blocked_until.get(r.key, 0.0):
                        store.blocked_until[r.key] = until
                rounded = int(r.usage_pct)
                if r.usage_pct > USAGE_LOG_PCT and store.logged_pct.get(r.key) != rounded:
                    to_log.append((r.key, r.usage_pct))
                store.logged_pct[r.key] = rounded
        for key, pct in to_log:
            log.info("Graph API usage for %s at %.0f%%", _describe(key), pct)
        for r in readings:
            if r.regain_minutes > 0:
                log.info(
                    "Graph API throttled %s: estimated_time_to_regain_access=%s min (%.2fs)",
                    _describe(r.key),
                    r.regain_minutes,
                    self._regain_wait(r),
                )
        return readings

    def _regain_wait(self, reading: UsageReading) -> float:
        return capped_wait(reading.regain_minutes * self.regain_unit_seconds, self.max_wait)

    def slowdown_for(self, usage_pct: float) -> float:
        """Proactive pause for a usage reading (0 below the threshold)."""
        if usage_pct < self.throttle_threshold:
            return 0.0
        span = max(100.0 - self.throttle_threshold, 1e-9)
        ratio = min(max((usage_pct - self.throttle_threshold) / span, 0.0), 1.0)
        return min(self.backoff_max, self.backoff_base * (1.0 + 9.0 * ratio))

    def wait_time(self, accounts: Iterable[str] = ()) -> tuple[float, str]:
        """Seconds to wait before a call touching ``accounts`` (and the app), and why."""
        keys = [account_key(a) for a in accounts] + [APP_KEY]
        now = self.clock()
        best, reason = 0.0, ""
        store = self.store
        with store.lock:
            for key in keys:
                until = store.blocked_until.get(key)
                if until is not None:
                    if until > now:
                        if until - now > best:
                            best, reason = until - now, f"{_describe(key)} blocked"
                    else:
                        del store.blocked_until[key]
                seen = store.usage.get(key)
                if seen is not None and not seen[2] and now - seen[1] <= USAGE_TTL_SECONDS:
                    pause = self.slowdown_for(seen[0])
                    if pause > best:
                        best, reason = pause, f"{_describe(key)} usage at {seen[0]:.0f}%"
        return capped_wait(best, self.max_wait), reason

    def usage(self, account_id: str | None = None) -> float | None:
        """Last usage reading (percent) of an ad account, or of the app when None."""
        key = APP_KEY if account_id is None else account_key(account_id)
        with self.store.lock:
            seen = self.store.usage.get(key)
        return None if seen is None else seen[0]

    def blocked_for(self, account_id: str | None = None) -> float:
        """Seconds an ad account (or the app) stays blocked (0 when not blocked)."""
        key = APP_KEY if account_id is None else account_key(account_id)
        with self.store.lock:
            until = self.store.blocked_until.get(key, 0.0)
        return max(0.0, until - self.clock())

    def reset(self) -> None:
        """Forget everything (process-wide). Meant for tests."""
        self.store.clear()


def _describe(key: str) -> str:
    return "the app" if key == APP_KEY else f"account {key}"
