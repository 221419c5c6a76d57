"""Per ad account usage over a sliding window, blocks, and the usage headers."""

from __future__ import annotations

import collections
import json
import math
import time
from typing import Any

ACCESS_TIER = "development_access"


class UsageTracker:
    def __init__(self) -> None:
        self.calls: dict[str | None, collections.deque[float]] = {}
        self.app_calls: collections.deque[float] = collections.deque()
        self.blocked_until: dict[str | None, float] = {}

    def reset(self) -> None:
        self.calls.clear()
        self.app_calls.clear()
        self.blocked_until.clear()

    def blocked_accounts(self) -> list[str | None]:
        """The accounts blocked now."""
        return [a for a in self.blocked_until if self.blocked_for(a) > 0]

    def forget(self, account: str | None) -> None:
        """End ``account``'s block and drop its recorded calls (as if its window had passed)."""
        self.blocked_until.pop(account, None)
        self.calls.pop(account, None)

    @staticmethod
    def _prune(dq: collections.deque[float], now: float, window: float) -> None:
        limit = now - window
        while dq and dq[0] <= limit:
            dq.popleft()

    def block(self, account: str | None, seconds: float, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self.blocked_until[account] = max(self.blocked_until.get(account, 0.0), now + seconds)

    def blocked_for(self, account: str | None, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        return max(0.0, self.blocked_until.get(account, 0.0) - now)

    def admit(self, accounts: list[str | None], cfg: dict[str, Any]) -> bool:
        """Record one call for ``accounts``; False (and a block) when it must be throttled."""
        now = time.monotonic()
        window = float(cfg["usage_window"])
        budget = int(cfg["usage_budget"])
        unit = max(float(cfg["regain_unit_seconds"]), 1e-6)
        for acc in accounts:
            if self.blocked_for(acc, now) > 0:
                return False
        for acc in accounts:
            if acc is None:
                continue
            dq = self.calls.setdefault(acc, collections.deque())
            self._prune(dq, now, window)
            if len(dq) >= budget:
                # Time until enough calls leave the window, in "minutes" of regain_unit_seconds.
                idx = len(dq) - budget
                wait = dq[idx] + window - now if budget > 0 else window
                minutes = max(1, math.ceil(wait / unit - 1e-9))
                self.block(acc, minutes * unit, now)
                return False
        for acc in accounts:
            if acc is not None:
                self.calls[acc].append(now)
        self.app_calls.append(now)
        self._prune(self.app_calls, now, window)
        return True

    def headers(
        self, accounts: list[str | None], cfg: dict[str, Any], use_case: str = "ads_management"
    ) -> dict[str, str]:
        """The usage headers; ``use_case`` is the BUC ``type`` (``ads_insights`` for insights calls)."""
        now = time.monotonic()
        window = float(cfg["usage_window"])
        budget = max(int(cfg["usage_budget"]), 1)
        unit = max(float(cfg["regain_unit_seconds"]), 1e-6)
        self._prune(self.app_calls, now, window)
        app = min(100, math.ceil(len(self.app_calls) * 100 / (budget * 10)))
        out = {"X-App-Usage": f'{{"call_count":{app},"total_cputime":{app},"total_time":{app}}}'}
        buc: list[str] = []
        for acc in accounts:
            if acc is None:
                continue
            dq = self.calls.setdefault(acc, collections.deque())
            self._prune(dq, now, window)
            pct = min(100, math.ceil(len(dq) * 100 / budget))
            blocked = self.blocked_for(acc, now)
            regain = math.ceil(blocked / unit - 1e-9) if blocked > 0 else 0
            if blocked > 0:
                pct = 100
            buc.append(
                f'{json.dumps(acc)}:[{{"type":{json.dumps(use_case)},"call_count":{pct},"total_cputime":{pct},'
                f'"total_time":{pct},"estimated_time_to_regain_access":{regain},'
                f'"ads_api_access_tier":"{ACCESS_TIER}"}}]'
            )
            if "X-Ad-Account-Usage" not in out:
                reset = max(math.ceil(dq[0] + window - now) if dq else 0, math.ceil(blocked))
                out["X-Ad-Account-Usage"] = (
                    f'{{"acc_id_util_pct":{pct},"reset_time_duration":{reset},"ads_api_access_tier":"{ACCESS_TIER}"}}'
                )
        if buc:
            out["X-Business-Use-Case-Usage"] = "{" + ",".join(buc) + "}"
        return out
