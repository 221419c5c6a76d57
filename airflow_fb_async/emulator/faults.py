"""Deterministic (queued) and random fault injection.

Random faults are reproducible by construction: whether a call (or a batch entry) is faulted is a
pure function of the seed, the call's ordinal among the non-admin HTTP calls since the random faults
were configured (or the emulator reset), the entry's position, and the fault kind (:func:`unit_draw`).
No random stream is shared, so nothing else (latency jitter, null entries, queued faults, threads
answering calls in another order) can shift the faults of later calls.
"""

from __future__ import annotations

import hashlib
import random
import re
from typing import Any

from .model import public

FAULT_TYPES = (
    "500",
    "throttle",
    "drop_after_commit",
    "drop_before",
    "empty_page",
    "code1",
    "short_batch",
    "error_after_commit",
    "entry_error_after_commit",
    "job_failed",
    "job_skipped",
    "token_rejected",
)
#: The ``faults_injected`` counter a fault type counts in, where it is not its own name.
COUNTED_AS = {"drop_after_commit": "drop", "drop_before": "drop"}
#: Faults taken by the next report runs (``POST .../insights``), not by an HTTP call as such.
JOB_FAULTS = frozenset({"job_failed", "job_skipped"})
#: Per-call random faults, in the order their probability intervals are laid out on one draw.
#: ``error_after_commit`` comes last and only applies to POST calls, so leaving it out for other
#: methods does not move the others' intervals.
RANDOM_CALL_TYPES = ("500", "drop_after_commit", "throttle", "error_after_commit")
RANDOM_ENTRY_TYPE = "entry_error_after_commit"
RANDOM_KEYS = frozenset({*RANDOM_CALL_TYPES, RANDOM_ENTRY_TYPE, "seed"})
BATCH_ONLY = frozenset({"code1", "short_batch", "entry_error_after_commit"})
ENTRY_FAULT_METHODS = frozenset({"POST", "DELETE"})
#: Graph's ``error_subcode`` for an expired session, the default of a ``token_rejected`` fault.
TOKEN_EXPIRED_SUBCODE = 463


def unit_draw(seed: object, *parts: object) -> float:
    """A number in [0, 1) fixed by ``seed`` and ``parts`` (e.g. the fault kind, the call ordinal)."""
    text = "|".join(str(p) for p in (seed, *parts))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") / 2**64


def validate_random_spec(value: Any) -> dict[str, Any] | None:
    """Check a ``random_faults`` config value; ``None``/``{}`` turn random faults off."""
    if value in (None, {}):
        return None
    if not isinstance(value, dict):
        raise ValueError("random_faults must be an object")
    bad = set(value) - RANDOM_KEYS
    if bad:
        raise ValueError(f"random_faults: unknown keys {sorted(bad)}; known: {sorted(RANDOM_KEYS)}")
    probs = {k: float(v or 0) for k, v in value.items() if k != "seed"}
    if any(p < 0 or p > 1 for p in probs.values()):
        raise ValueError("random_faults probabilities must be within 0..1")
    if sum(p for k, p in probs.items() if k in RANDOM_CALL_TYPES) > 1:
        raise ValueError(f"random_faults probabilities of {', '.join(RANDOM_CALL_TYPES)} must sum to <= 1")
    return dict(value)


def _compile(spec: dict[str, Any], key: str) -> re.Pattern[str] | None:
    """The regex under ``key`` (null allowed), or a ValueError naming the key."""
    value = spec.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError(f"{key} must be null or a string, not {type(value).__name__}")
    try:
        return re.compile(value)
    except re.error as exc:
        raise ValueError(f"{key} {value!r} is not a valid regular expression: {exc}") from None


def _count(spec: dict[str, Any], key: str, default: int, minimum: int) -> int:
    """The integer under ``key`` (``default`` when absent), or a ValueError naming the key."""
    value = spec.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{key} must be an integer >= {minimum}, not {value!r}")
    return value


def _entry_selector(spec: dict[str, Any]) -> tuple[list[int] | None, str | None]:
    entries = spec.get("entries")
    positions_ok = isinstance(entries, list) and all(
        isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in entries
    )
    if entries is not None and not positions_ok:
        raise ValueError("entries must be null or a list of entry positions (integers >= 0)")
    _compile(spec, "entry_regex")
    return entries, spec.get("entry_regex") or None


class FaultQueue:
    """Queued faults (taken first) and the random fault settings, with the call ordinal counter."""

    def __init__(self) -> None:
        self.queue: list[dict[str, Any]] = []
        self.random_spec: dict[str, Any] | None = None
        self.seed: object = random.randrange(2**63)
        self.ordinal = 0

    def clear(self) -> None:
        self.queue.clear()

    def add(self, spec: dict[str, Any]) -> dict[str, Any]:
        ftype = str(spec.get("type"))
        if ftype not in FAULT_TYPES:
            raise ValueError(
                f"unknown fault type {spec.get('type')!r}; expected one of {', '.join(FAULT_TYPES)}"
            )
        count = _count(spec, "count", 1, 1)
        method = spec.get("method")
        if method is not None:
            method = str(method).upper()
        regex = spec.get("path_regex") or None
        compiled = _compile(spec, "path_regex")
        fault = {
            "type": ftype,
            "count": count,
            "method": method,
            "path_regex": regex,
            "regain_minutes": int(spec.get("regain_minutes", 1)),
            "after": _count(spec, "after", 0, 0),
            "_re": compiled,
        }
        if ftype == "token_rejected":
            subcode = spec.get("subcode", TOKEN_EXPIRED_SUBCODE)
            if subcode is not None and (isinstance(subcode, bool) or not isinstance(subcode, int)):
                raise ValueError(f"subcode must be null or an integer, not {subcode!r}")
            fault["subcode"] = subcode
        if ftype == "entry_error_after_commit":
            fault["entries"], fault["entry_regex"] = _entry_selector(spec)
        self.queue.append(fault)
        return public(fault)

    def listing(self) -> list[dict[str, Any]]:
        return [public(f) for f in self.queue]

    def set_random(self, spec: dict[str, Any] | None) -> None:
        """Set (or turn off) random faults; the call ordinals start again from here."""
        self.random_spec = dict(spec) if spec else None
        seed = (spec or {}).get("seed")
        self.seed = random.randrange(2**63) if seed is None else seed
        self.ordinal = 0

    def next_ordinal(self) -> int:
        """The ordinal of a new non-admin call (1, 2, ...); call with the engine lock held."""
        self.ordinal += 1
        return self.ordinal

    def _fires(self, fault: dict[str, Any]) -> bool:
        """Count a match against a queued fault: skipped while ``after`` lasts, else used up once."""
        if fault["after"] > 0:
            fault["after"] -= 1
            return False
        fault["count"] -= 1
        if fault["count"] <= 0:
            self.queue.remove(fault)
        return True

    def take(self, method: str, path: str, full: str, kind: str, ordinal: int) -> dict[str, Any] | None:
        """The fault for this call: the first matching queued one, else the random draw."""
        for fault in self.queue:
            if fault["type"] in JOB_FAULTS or (fault["method"] and fault["method"] != method):
                continue
            rx = fault["_re"]
            if rx is not None and not (rx.search(path) or rx.search(full)):
                continue
            if fault["type"] == "empty_page" and kind != "get_edge":
                continue
            if fault["type"] in BATCH_ONLY and kind != "batch":
                continue
            if not self._fires(fault):
                continue
            return {k: v for k, v in fault.items() if k not in ("count", "after", "_re")}
        spec = self.random_spec
        if spec:
            draw = unit_draw(self.seed, "call", ordinal)
            acc = 0.0
            for ftype in RANDOM_CALL_TYPES:
                if ftype == "error_after_commit" and method != "POST":
                    continue
                acc += float(spec.get(ftype, 0) or 0)
                if draw < acc:
                    return {"type": ftype, "regain_minutes": 1}
        return None

    def take_job(self, path: str) -> str | None:
        """The fate (``job_failed`` / ``job_skipped``) of a report run started on ``path``, if one is
        queued for it (a top-level call or a batch entry alike); call with the engine lock held."""
        for fault in self.queue:
            rx = fault["_re"]
            if fault["type"] not in JOB_FAULTS or (rx is not None and not rx.search(path)):
                continue
            if not self._fires(fault):
                continue
            return str(fault["type"])
        return None

    def random_entry_fault(self, ordinal: int, index: int, method: str) -> bool:
        """Whether random ``entry_error_after_commit`` hits entry ``index`` of batch call ``ordinal``."""
        p = float((self.random_spec or {}).get(RANDOM_ENTRY_TYPE, 0) or 0)
        return (
            p > 0
            and method in ENTRY_FAULT_METHODS
            and unit_draw(self.seed, RANDOM_ENTRY_TYPE, ordinal, index) < p
        )

    def null_entry(self, ordinal: int, index: int, fraction: float) -> bool:
        """Whether entry ``index`` of batch call ``ordinal`` is answered ``null`` (``null_fraction``)."""
        return fraction > 0 and unit_draw(self.seed, "null", ordinal, index) < fraction


def entry_chosen(fault: dict[str, Any] | None, index: int, entry_text: str) -> bool:
    """Whether a queued ``entry_error_after_commit`` fault picks entry ``index``
    (``entry_text`` is ``METHOD relative_url``)."""
    if fault is None or fault.get("type") != "entry_error_after_commit":
        return False
    entries, regex = fault.get("entries"), fault.get("entry_regex")
    if entries is None and regex is None:
        return True
    return (entries is not None and index in entries) or (
        regex is not None and re.search(regex, entry_text) is not None
    )
