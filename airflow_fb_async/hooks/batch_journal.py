"""The standard batch's journal: what a later try needs to send only what is not settled.

A try can die at any instant (worker killed, task timeout). :class:`GraphHook.batch` takes a
``journal`` (anything with ``load()`` and ``save(state)``, see :class:`BatchJournal`) and keeps in it
one compact, JSON-serialisable state per batch:

``{"v": 1, "fp": <fingerprint of the validated requests>, "st": <one letter per entry>,
"res": {"<index>": [code, body], ...}}``

Letters of ``st`` (the index is the position in the input list):

- ``.`` not settled: never sent, or answered "not done" / a definite error: sent again;
- ``F`` in flight: saved *before* the call goes out. Read back by a later try it means "may or may
  not have run": a non-repeatable write (a create) becomes 504 ``BatchEntryAmbiguous`` and is never
  resent; a read or a repeatable write is sent again;
- ``S`` succeeded: its ``[code, body]`` is in ``res`` (headers are not kept) and is returned as is;
  references to it resolve from that body;
- ``A`` ambiguous (504): never resent.

Size: one byte per entry plus the JSON of each succeeded entry's code and body: about 42 bytes for
a create answering ``{"id": "..."}`` (419 KB for 10,000 settled creates with ``json.dumps``
defaults, 358 KB for 10,000 settled reads of ``{"id": "act_N"}``).

The engine calls ``load()`` once at the start, ``save()`` before each HTTP call goes out (its
entries marked ``F``) and after that call's outcome is merged. Calls of one batch may run on several
threads: the engine serialises its ``save()`` calls, each with a fresh dict the journal may keep.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from airflow_fb_async.hooks.batch_validate import BatchEntry

log = logging.getLogger("airflow_fb_async.hooks.batch")

STATE_VERSION = 1
PENDING = "."
IN_FLIGHT = "F"
SUCCEEDED = "S"
AMBIGUOUS = "A"
_LETTERS = frozenset({PENDING, IN_FLIGHT, SUCCEEDED, AMBIGUOUS})


@runtime_checkable
class BatchJournal(Protocol):
    """Where a batch keeps its state across tries (the operator backs it with Airflow's task state)."""

    def load(self) -> dict[str, Any] | None:
        """The state saved by an earlier try of the same batch, or None."""

    def save(self, state: dict[str, Any]) -> None:
        """Keep ``state`` (JSON-serialisable) for a later try; called before each call goes out."""


class MemoryJournal:
    """A journal kept in memory (one process): for tests and for callers that persist it themselves."""

    def __init__(self, state: dict[str, Any] | None = None) -> None:
        self.state = state
        self.saves = 0

    def load(self) -> dict[str, Any] | None:
        return self.state

    def save(self, state: dict[str, Any]) -> None:
        self.state = state
        self.saves += 1


def fingerprint(entries: Sequence[BatchEntry]) -> str:
    """A short hash of what is sent: a state saved for other requests is not applied."""
    digest = hashlib.sha256()
    for e in entries:
        item = [
            e.method,
            e.relative_url,
            e.body,
            e.name,
            list(e.depends_on),
            list(e.headers),
            list(e.attached_files),
            e.repeatable,
        ]
        digest.update(json.dumps(item, separators=(",", ":")).encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()[:32]


def parse_state(
    raw: Mapping[str, Any] | None, fp: str, size: int
) -> tuple[list[str], dict[int, dict[str, Any]]] | None:
    """``(letters, {index: result})`` of a saved state, or None when it does not fit this batch."""
    if raw is None:
        return None
    letters = raw.get("st") if isinstance(raw, Mapping) else None
    results = raw.get("res") if isinstance(raw, Mapping) else None
    if (
        raw.get("v") != STATE_VERSION
        or raw.get("fp") != fp
        or not isinstance(letters, str)
        or len(letters) != size
        or not _LETTERS.issuperset(letters)
        or not isinstance(results, Mapping)
    ):
        log.warning("batch: the saved journal state does not match these requests; starting afresh")
        return None
    out: dict[int, dict[str, Any]] = {}
    for key, value in results.items():
        try:
            index = int(key)
            code, body = value
        except (TypeError, ValueError):
            log.warning("batch: the saved journal state is damaged; starting afresh")
            return None
        if 0 <= index < size and letters[index] == SUCCEEDED:
            out[index] = {"code": int(code), "headers": {}, "body": body}
    missing = [i for i, c in enumerate(letters) if c == SUCCEEDED and i not in out]
    if missing:
        log.warning("batch: the saved journal state lacks results; starting afresh")
        return None
    return list(letters), out


def build_state(fp: str, letters: Sequence[str], results: Mapping[str, list[Any]]) -> dict[str, Any]:
    """The JSON-serialisable state (fresh containers: the journal may keep it; the ``[code, body]``
    lists are never changed once stored)."""
    return {"v": STATE_VERSION, "fp": fp, "st": "".join(letters), "res": dict(results)}
