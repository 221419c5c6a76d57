"""Deterministic (queued) and random fault injection."""

from __future__ import annotations

import random
import re
from typing import Any

FAULT_TYPES = ("500", "throttle", "drop_after_commit", "drop_before", "empty_page", "code1", "short_batch")
RANDOM_TYPES = ("500", "drop_after_commit", "throttle")


class FaultQueue:
    def __init__(self) -> None:
        self.queue: list[dict[str, Any]] = []
        self.rng = random.Random()
        self.random_spec: dict[str, Any] | None = None

    def clear(self) -> None:
        self.queue.clear()

    def add(self, spec: dict[str, Any]) -> dict[str, Any]:
        ftype = str(spec.get("type"))
        if ftype not in FAULT_TYPES:
            raise ValueError(
                f"unknown fault type {spec.get('type')!r}; expected one of {', '.join(FAULT_TYPES)}"
            )
        count = int(spec.get("count", 1))
        if count < 1:
            raise ValueError("count must be >= 1")
        method = spec.get("method")
        if method is not None:
            method = str(method).upper()
        regex = spec.get("path_regex")
        compiled = re.compile(regex) if regex else None
        fault = {
            "type": ftype,
            "count": count,
            "method": method,
            "path_regex": regex,
            "regain_minutes": int(spec.get("regain_minutes", 1)),
            "_re": compiled,
        }
        self.queue.append(fault)
        return self.public(fault)

    @staticmethod
    def public(fault: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in fault.items() if not k.startswith("_")}

    def listing(self) -> list[dict[str, Any]]:
        return [self.public(f) for f in self.queue]

    def set_random(self, spec: dict[str, Any] | None) -> None:
        self.random_spec = dict(spec) if spec else None
        seed = (spec or {}).get("seed")
        self.rng = random.Random(seed)

    def take(self, method: str, path: str, full: str, kind: str) -> dict[str, Any] | None:
        for fault in self.queue:
            if fault["method"] and fault["method"] != method:
                continue
            rx = fault["_re"]
            if rx is not None and not (rx.search(path) or rx.search(full)):
                continue
            if fault["type"] == "empty_page" and kind != "get_edge":
                continue
            if fault["type"] in ("code1", "short_batch") and kind != "batch":
                continue
            fault["count"] -= 1
            if fault["count"] <= 0:
                self.queue.remove(fault)
            return {"type": fault["type"], "regain_minutes": fault["regain_minutes"]}
        spec = self.random_spec
        if spec:
            draw = self.rng.random()
            acc = 0.0
            for ftype in RANDOM_TYPES:
                acc += float(spec.get(ftype, 0) or 0)
                if draw < acc:
                    return {"type": ftype, "regain_minutes": 1}
        return None
