"""The call log behind ``GET /__admin/calls``: one record per non-admin HTTP call, tokens redacted."""

from __future__ import annotations

import copy
import time
from typing import Any

MAX_CALLS = 200_000
TRIM = 10_000  # dropped from the front when the log is full
SECRET_PARAMS = ("access_token", "appsecret_proof")


class CallLog:
    """Records calls in order (``seq``); never holds a token: ``tokens`` are redacted from every value.

    Not thread-safe on its own: the engine calls it under the store lock.
    """

    def __init__(self, tokens: set[str]) -> None:
        self.tokens = tokens
        self.calls: list[dict[str, Any]] = []
        self.seq = 0

    def redact(self, query: dict[str, str]) -> dict[str, str]:
        out = {}
        for k, v in query.items():
            if k in SECRET_PARAMS:
                v = "REDACTED"
            else:
                for t in self.tokens:
                    if t in v:
                        v = v.replace(t, "REDACTED")
            out[k] = v
        return out

    def record(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        status: int | None,
        kind: str,
        fault: str | None,
        started: float,
        batch_size: int | None,
    ) -> None:
        """Append one call (``status`` None: dropped without an answer; ``started``: monotonic)."""
        self.seq += 1
        if len(self.calls) >= MAX_CALLS:
            del self.calls[:TRIM]
        self.calls.append(
            {
                "seq": self.seq,
                "method": method,
                "path": path,
                "query": self.redact(query),
                "status": status,
                "kind": kind,
                "fault": fault,
                "ms": round((time.monotonic() - started) * 1000, 2),
                "batch_size": batch_size,
            }
        )

    def clear(self) -> None:
        """Empty the log (``seq`` keeps increasing)."""
        self.calls.clear()

    def listing(self) -> list[dict[str, Any]]:
        return copy.deepcopy(self.calls)
