"""The standard batch's journal kept in Airflow's task state store, so a retry resumes the batch.

:class:`GraphBatchOperator` hands the batch engine a journal (``load()`` / ``save(state)``, the
``BatchJournal`` protocol of :mod:`airflow_fb_async.hooks.batch_journal`). The engine records each call
before it goes out and each outcome after it; a later try of the same task instance loads that
state and sends only what is not settled. This module stores the engine's state in
``context["task_state_store"]`` (Airflow 3.3+), which Airflow scopes to the task instance (dag run,
task, map index) and keeps across tries.

Layout of the store (``KEY`` = ``fb_batch_journal``)::

    KEY          {"v": 1, "requests": <sha256 of the rendered requests>, "bytes": n,
                  "state": {...small top-level values of the state, inline, readable in the UI...},
                  "sections": {"<top-level key>": ["<digest>", ...], ...}}   (large values)
    KEY.<digest> a slice (at most PART_CHARS) of the base64 of one large value's zlib-compressed JSON

- **Requests hash.** The head names the rendered requests it belongs to; a try whose requests
  differ starts fresh (and says so in the log) instead of mapping old outcomes onto new requests.
- **Atomic switch.** Parts are content-addressed and written before the head that lists them;
  parts the new head no longer lists are deleted after it. A crash at any point leaves a head whose
  parts exist: a later try reads the old state or the new one, never a mix.
- **Small writes.** Each large top-level value is a section of its own and only parts whose
  content changed are written: the engine's per-entry status letters (one small part) change on
  every save, its results grow at their end (the compressed prefix, and the parts holding it, stay
  the same). Every value stays under Airflow's ``[state_store] max_value_storage_bytes`` default
  (64 KiB). Measured by ``benchmarks/batch_journal.py``: 10,000 creates leave ~73 KB in 4 keys.
- **Loud on damage.** A head or part that cannot be read fails the task
  (:class:`BatchJournalError`, no retries): guessing could send a create twice.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import hashlib
import json
import logging
import threading
import zlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from airflow_fb_async._compat import AirflowFailException
from airflow_fb_async.exceptions import FacebookGraphError

if TYPE_CHECKING:
    from airflow_fb_async.hooks.batch_validate import BatchEntry

#: Store key of the journal head (part keys are ``f"{KEY}.{digest}"``).
KEY = "fb_batch_journal"
FORMAT_VERSION = 1
#: States whose compact JSON is at most this long are stored inline (readable in the UI).
INLINE_MAX_CHARS = 32_000
#: Above INLINE_MAX_CHARS, a top-level value whose JSON is longer than this becomes a section in parts.
SECTION_INLINE_MAX_CHARS = 2_000
#: Characters of base64 per part: the stored JSON string stays under 64 KiB.
PART_CHARS = 48_000

log = logging.getLogger(__name__)


class BatchJournalError(FacebookGraphError, AirflowFailException):
    """The journal an earlier try left is unreadable: refuse to guess what it already sent."""


class InfoLogger(Protocol):
    """What the journal logs through: a stdlib logger or the task's ``self.log``."""

    def info(self, msg: str, /, *args: Any) -> Any:
        """Log ``msg % args`` at INFO."""


class TaskStateStore(Protocol):
    """The part of Airflow 3.3's ``TaskStateStoreAccessor`` the journal uses."""

    def get(self, key: str, default: Any = None) -> Any:
        """The JSON value stored under ``key``, or ``default``."""

    def set(self, key: str, value: Any) -> None:
        """Store a JSON value under ``key`` for later tries of the task instance."""

    def delete(self, key: str) -> None:
        """Forget ``key``."""


def _canonical(value: Any) -> Any:
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    return repr(value)


def requests_digest(requests: Sequence[Any]) -> str:
    """SHA-256 of the rendered requests (key order ignored; dates as ISO 8601, as they are sent)."""
    text = json.dumps(list(requests), sort_keys=True, separators=(",", ":"), default=_canonical)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _part_digest(chunk: str) -> str:
    return hashlib.sha256(chunk.encode("ascii")).hexdigest()[:24]


class TaskStateJournal:
    """A ``BatchJournal`` over a task state store (see the module docstring for the layout).

    :param store: ``context["task_state_store"]`` or anything with its ``get``/``set``/``delete``.
    :param requests: the rendered requests this batch sends (hashed, not stored).
    :param key: store key of the head; parts get ``f"{key}.{digest}"``.
    :param logger: where resume / fresh-start lines go (the task's log).
    """

    def __init__(
        self,
        store: TaskStateStore,
        requests: Sequence[Any],
        *,
        key: str = KEY,
        logger: InfoLogger | None = None,
    ) -> None:
        self.store = store
        self.log: InfoLogger = logger or log
        self.key = key
        self.digest = requests_digest(requests)
        self._parts: set[str] = set()  # parts the stored head lists
        self._lock = threading.Lock()
        #: Compact JSON length of the last state saved or loaded (for logs and benchmarks).
        self.state_chars = 0
        #: Characters stored for that state (head and parts).
        self.stored_chars = 0

    def _part_key(self, digest: str) -> str:
        return f"{self.key}.{digest}"

    def _damaged(self, what: str) -> BatchJournalError:
        return BatchJournalError(
            f"The batch journal an earlier try of this task left in the task state store is unreadable "
            f"({what}). It records which requests were already sent; rather than risk sending a create "
            f"twice, the task stops. Check the objects on the ad account, then delete the task state "
            f"keys {self.key!r} and {self.key + '.*'!r} to start the batch afresh."
        )

    def load(self) -> dict[str, Any] | None:
        """The state an earlier try saved for the same requests, or None (nothing, or other requests)."""
        with self._lock:
            head = self.store.get(self.key)
            if head is None:
                return None
            if not isinstance(head, Mapping):
                raise self._damaged(f"head of type {type(head).__name__}")
            if head.get("v") != FORMAT_VERSION:
                raise self._damaged(f"head format {head.get('v')!r}, expected {FORMAT_VERSION}")
            if head.get("requests") != self.digest:
                self.log.info(
                    "The rendered requests differ from those of an earlier try of this task: starting the "
                    "batch afresh (the earlier try's journal is discarded; what it sent may be sent again)."
                )
                self._delete(head)
                return None
            state = head.get("state")
            sections = head.get("sections")
            if not isinstance(state, dict):
                raise self._damaged(f"state of type {type(state).__name__}")
            if not isinstance(sections, Mapping):
                raise self._damaged(f"sections of type {type(sections).__name__}")
            state = dict(state)
            for name, parts in sections.items():
                state[name] = self._read_section(name, parts)
                self._parts.update(parts)
            self.state_chars = int(head.get("bytes") or 0)
            self.log.info(
                "Found the batch journal of an earlier try of this task (%d characters of state): "
                "resuming, entries it settled are not sent again.",
                self.state_chars,
            )
            return state

    def _read_section(self, name: str, parts: Any) -> Any:
        if not isinstance(parts, list) or not parts or not all(isinstance(p, str) for p in parts):
            raise self._damaged(f"section {name!r} without parts")
        chunks = []
        for digest in parts:
            chunk = self.store.get(self._part_key(digest))
            if not isinstance(chunk, str) or _part_digest(chunk) != digest:
                raise self._damaged(f"part {digest} of section {name!r} missing or altered")
            chunks.append(chunk)
        try:
            return json.loads(zlib.decompress(base64.b64decode("".join(chunks), validate=True)))
        except (binascii.Error, zlib.error, ValueError) as err:
            raise self._damaged(f"{type(err).__name__} while decoding section {name!r}") from None

    def save(self, state: Mapping[str, Any]) -> None:
        """Store ``state`` for the next try: new parts first, then the head, then stale parts deleted.

        Each top-level value of ``state`` whose JSON is longer than ``SECTION_INLINE_MAX_CHARS`` is a
        section of its own, compressed and cut into parts: a value that only grows at its end
        (results) keeps its earlier parts while a small value that changes everywhere (per-entry
        status letters) costs only its own parts.
        """
        texts = {name: json.dumps(value, separators=(",", ":")) for name, value in state.items()}
        total = sum(len(t) for t in texts.values())
        inline = total <= INLINE_MAX_CHARS
        head: dict[str, Any] = {"v": FORMAT_VERSION, "requests": self.digest, "bytes": total}
        head["state"] = {
            n: v for n, v in state.items() if inline or len(texts[n]) <= SECTION_INLINE_MAX_CHARS
        }
        head["sections"] = {}
        with self._lock:
            referenced: set[str] = set()
            stored = 0
            for name, text in texts.items():
                if name in head["state"]:
                    continue
                blob = base64.b64encode(zlib.compress(text.encode("utf-8"), 6)).decode("ascii")
                chunks = [blob[i : i + PART_CHARS] for i in range(0, len(blob), PART_CHARS)]
                digests = [_part_digest(chunk) for chunk in chunks]
                for digest, chunk in zip(digests, chunks, strict=True):
                    if digest not in self._parts and digest not in referenced:
                        self.store.set(self._part_key(digest), chunk)
                    referenced.add(digest)
                head["sections"][name] = digests
                stored += len(blob)
            self.store.set(self.key, head)
            for digest in self._parts - referenced:
                self.store.delete(self._part_key(digest))
            self._parts = referenced
            self.state_chars = total
            self.stored_chars = stored + len(json.dumps(head, separators=(",", ":")))

    def clear(self) -> None:
        """Delete the stored state (head and parts): the batch it belongs to is settled elsewhere."""
        with self._lock:
            head = self.store.get(self.key)
            self._delete(head if isinstance(head, Mapping) else {})

    def _delete(self, head: Mapping[str, Any]) -> None:
        self.store.delete(self.key)
        sections = head.get("sections")
        for parts in sections.values() if isinstance(sections, Mapping) else ():
            for digest in parts if isinstance(parts, list) else ():
                if isinstance(digest, str):
                    self.store.delete(self._part_key(digest))
        self._parts = set()


def journal_from_context(
    context: Mapping[str, Any], requests: Sequence[Any], logger: InfoLogger
) -> TaskStateJournal | None:
    """The journal of this task instance, or None (with an INFO line) when Airflow has no state store.

    ``task_state_store`` exists from Airflow 3.3; before, a retry of the task sends the whole batch
    again, entries an earlier try already ran included.
    """
    store = context.get("task_state_store")
    if store is None:
        logger.info(
            "This Airflow has no task_state_store (Airflow 3.3+): the batch runs without a journal, "
            "so a retry of this task may resend requests that an earlier try already sent."
        )
        return None
    return TaskStateJournal(store, requests, logger=logger)


def refuse_blind_resend(context: Mapping[str, Any], entries: Sequence[BatchEntry]) -> None:
    """Without a state store, a retry must not send creates again blindly.

    On a later try (``try_number`` > 1) the earlier try may have created objects that nothing
    recorded, so a batch holding non-repeatable writes fails before any HTTP call and says why;
    reads, updates of one object and deletes are harmless to resend and run as usual.
    """
    ti = context.get("ti")
    try_number = getattr(ti, "try_number", 1) or 1
    if try_number <= 1:
        return
    creates = [e for e in entries if not e.repeatable]
    if not creates:
        return
    listed = ", ".join(e.label for e in creates[:5]) + (" ..." if len(creates) > 5 else "")
    raise AirflowFailException(
        f"This is try {try_number} of the task, and this Airflow has no task_state_store (Airflow "
        f"3.3+) to tell what the earlier try already sent. {len(creates)} of {len(entries)} "
        f"requests are not repeatable (creates: {listed}); sending them again could create "
        "duplicates, so nothing was sent. Check what exists in Graph and send only what is "
        "missing, or set resend_creates_without_state=True to send everything again."
    )
