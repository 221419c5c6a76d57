"""Progress of a wait on request sets: per set and overall, with a rate and an ETA, logged on change.

A waiter logs a round's lines when a set's counts moved or a set completed, and otherwise at most
every :data:`QUIET_LOG_INTERVAL` seconds ("still waiting" with the same counts), so 200 idle
triggers polling every 5 s do not write 40 lines a second.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from airflow_fb_async.hooks.set_fields import SET_COUNT_FIELDS
from airflow_fb_async.hooks.statuses import set_count, set_is_completed
from airflow_fb_async.waiting.events import SUMMARY_FIELDS, totals

if TYPE_CHECKING:
    from collections.abc import Mapping

#: Seconds between progress lines of a wait whose counts do not change.
QUIET_LOG_INTERVAL = 60.0
#: Per-set progress lines per round before the log says "and N more".
MAX_SET_LINES = 10


class ProgressTracker:
    """Turns successive reads into progress lines: per set and overall, with a rate and an ETA."""

    def __init__(self, set_ids: list[str], quiet_interval: float = QUIET_LOG_INTERVAL) -> None:
        self.set_ids = list(set_ids)
        self.quiet_interval = float(quiet_interval)
        self._last_lines: float | None = None
        self.latest: dict[str, dict[str, int]] = {}
        self.completed: set[str] = set()
        self.changed: list[str] = []
        self._first: tuple[float, int] | None = None

    def update(self, raw: Mapping[str, Mapping[str, Any]]) -> list[str]:
        """Record a round of raw sets; return the ids that completed in it (``changed`` lists the sets
        whose counts moved)."""
        newly: list[str] = []
        self.changed.clear()  # reused: a new list per round would outlive it in every waiting trigger
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

    def lines(self, newly_completed: list[str], now: float | None = None) -> list[str]:
        """Progress lines for one round: each set that completed or moved (capped; unchanged sets are
        not repeated), then the overall line. Nothing when no count moved and the last lines are less
        than ``quiet_interval`` seconds old (``now``: monotonic seconds, default the clock)."""
        now = time.monotonic() if now is None else now
        moved = list(dict.fromkeys([*newly_completed, *self.changed]))
        if not moved and self._last_lines is not None and now - self._last_lines < self.quiet_interval:
            return []
        self._last_lines = now
        out = [self.set_line(sid) for sid in moved[:MAX_SET_LINES]]
        if len(moved) > MAX_SET_LINES:
            out.append(f"... and {len(moved) - MAX_SET_LINES} more request set(s) moved")
        out.append(self.overall_line() if moved else f"still waiting: {self.overall_line()}")
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
