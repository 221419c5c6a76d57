"""Standard batch runner behind :meth:`GraphHook.batch` (``POST /`` with a ``batch`` form field).

Pipeline: :func:`~.batch_validate.validate_requests` (pure, before any HTTP call) -> rounds of
:func:`~.batch_plan.plan_chunks` (pure) -> calls through a :class:`BatchClient` (the hook) -> per-entry
:mod:`outcomes <.batch_outcomes>` -> one result per request, in input order:
``{"code": int, "headers": {name: value}, "body": <parsed JSON or None>}``.

Rules this module implements (Graph facts: ``GRAPH_NOTES.md``; the write rules: ``docs/exactly-once.md``):

- **References and ``depends_on`` point to earlier entries** (checked at validation). Entries tied
  by them travel in one call when they fit, and Graph resolves the references; a longer chain goes
  on in the next call, its references resolved client-side (:mod:`.jsonpath`). ``depends_on`` may
  name several entries: every one must succeed, in the same call (sent to Graph as a list) or an
  earlier one, else the entry is 424 ``BatchDependencyFailed`` and is not sent.
- **``null`` means "not done".** Named entries go with ``omit_response_on_success: false`` (a user's
  ``true`` is applied client-side), so a ``null`` entry did not run: it is sent again in a later
  round with its dependents; after ``max_rounds`` attempts it is 503 ``BatchEntryIncomplete``.
- **Exactly once.** Every entry is repeatable or not (``BatchEntry.repeatable``). An uncertain
  outcome (no answer, 5xx, codes 1 / 2, ``is_transient``) of a repeatable entry is sent again; of
  any other it is 504 ``BatchEntryAmbiguous`` and never resent. This holds for an entry's own
  answer, for a whole call (a call with non-repeatable entries is sent with ``idempotent=False``,
  so the hook raises :class:`GraphAmbiguousError` instead of resending it), and for the code 1 / 960
  halving ("reduce the amount of data"): a call of one entry is retried by the hook like any
  transient error, within the same rule. Throttling means "not done": sent again, whatever the method.
- **A batch that cannot go on** (the token rejected midway) raises :class:`GraphBatchError` with
  ``results`` (input order, None for entries not settled) and ``cause``; calls already in flight
  finish and are kept.
- **Journal.** With a :class:`~.batch_journal.BatchJournal`, a later try sends only what is not
  settled (see that module).
- **Headers** of every entry feed the throttle; **files** travel only with the call that names them;
  the calls of a round run on up to ``max_concurrency`` threads sharing the hook.
"""

from __future__ import annotations

import logging
import queue
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from airflow_fb_async.exceptions import GraphAPIError, GraphBatchError, GraphInputError
from airflow_fb_async.hooks.batch_call import BatchClient, BatchStopped, CallMaker
from airflow_fb_async.hooks.batch_journal import BatchJournal
from airflow_fb_async.hooks.batch_outcomes import (
    REQUEUE,
    BatchLedger,
    Outcome,
    dependency_failed_entry,
    entry_failed,
)
from airflow_fb_async.hooks.batch_plan import (
    DEFAULT_MAX_ADS_PER_CHUNK,
    DEFAULT_MAX_ADSETS_PER_CAMPAIGN_PER_CHUNK,
    plan_chunks,
)
from airflow_fb_async.hooks.batch_validate import (
    MAX_BATCH_SIZE,
    BatchEntry,
    FileSource,
    validate_files,
    validate_requests,
)

log = logging.getLogger("airflow_fb_async.hooks.batch")

DEFAULT_MAX_ROUNDS = 10
# Progress lines: at most about one per this fraction of the batch (and the last one).
PROGRESS_LOG_STEP = 0.05

ProgressCallback = Callable[[int, int, int], None]
ChunkFuture = Future[tuple[dict[int, Outcome], GraphAPIError | None]]


@dataclass(frozen=True)
class BatchSettings:
    """How a standard batch runs: every knob of :meth:`GraphHook.batch` and :func:`run_batch` but
    the requests, their files and the journal. Declared once here; checked when built.

    :param include_headers: keep each entry's response headers in the results.
    :param max_concurrency: calls in flight at once.
    :param max_rounds: attempts per entry answered ``null`` (or with a retryable error).
    :param max_ads_per_chunk: ad-creating POSTs (``.../ads``) per call (Marketing API guidance).
    :param max_adsets_per_campaign_per_chunk: ad-set-creating POSTs (``.../adsets``) naming the same
        ``campaign_id`` (an id, or the same reference text) per call; None for no limit.
    :param chunk_size: entries per call (at most 50).
    :param progress: ``progress(done, total, errors)`` after every call.
    :param round_backoff: base pause between retry rounds (default: the connection's backoff_base).
    :param round_backoff_max: cap of that pause.
    """

    include_headers: bool = True
    max_concurrency: int = 4
    max_rounds: int = DEFAULT_MAX_ROUNDS
    max_ads_per_chunk: int = DEFAULT_MAX_ADS_PER_CHUNK
    max_adsets_per_campaign_per_chunk: int | None = DEFAULT_MAX_ADSETS_PER_CAMPAIGN_PER_CHUNK
    chunk_size: int = MAX_BATCH_SIZE
    progress: ProgressCallback | None = None
    round_backoff: float | None = None
    round_backoff_max: float = 30.0

    def __post_init__(self) -> None:
        for name in ("max_concurrency", "max_rounds", "max_ads_per_chunk"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise GraphInputError(f"{name} must be a positive integer, got {value!r}")
        limit = self.max_adsets_per_campaign_per_chunk
        if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
            raise GraphInputError(
                f"max_adsets_per_campaign_per_chunk must be a positive integer or None, got {limit!r}"
            )
        size = self.chunk_size
        if not isinstance(size, int) or isinstance(size, bool) or not 1 <= size <= MAX_BATCH_SIZE:
            raise GraphInputError(f"chunk_size must be an integer from 1 to {MAX_BATCH_SIZE}, got {size!r}")


class BatchRunner:
    """Runs one validated batch through a :class:`BatchClient`. Use :func:`run_batch`."""

    def __init__(
        self,
        client: BatchClient,
        entries: list[BatchEntry],
        settings: BatchSettings,
        *,
        files: dict[str, FileSource],
        journal: BatchJournal | None = None,
    ) -> None:
        self.core = client.core
        self.entries = entries
        self.settings = settings
        base = settings.round_backoff
        self.round_backoff = max(0.0, self.core.policy.backoff_base if base is None else base)
        self.ledger = BatchLedger(entries, settings.max_rounds, journal)
        self.calls = CallMaker(client, entries, files, self.ledger)
        self._logged_done = -1

    # ---- rounds --------------------------------------------------------------------------------

    def _ready(self) -> list[int]:
        """Pending entries whose dependencies are done or ready; dependents of failures finish."""
        led = self.ledger
        ready: set[int] = set()
        for e in self.entries:
            i = e.index
            if led.done[i]:
                continue
            if not e.deps:
                ready.add(i)
                continue
            failed = next((d for d in e.deps if led.done[d] and entry_failed(led.results[d])), None)
            if failed is not None:
                led.finish(i, dependency_failed_entry(self.entries[failed]))
                continue
            if all(led.done[d] or d in ready for d in e.deps):
                ready.add(i)
        return sorted(ready)

    def _run_chunk(self, ids: list[int]) -> tuple[dict[int, Outcome], GraphAPIError | None]:
        outcomes: dict[int, Outcome] = {}
        stop: GraphAPIError | None = None
        try:
            self.calls.send(ids, outcomes)
        except BatchStopped as exc:
            stop = exc.error
        for i in ids:
            if i not in outcomes:
                outcomes[i] = Outcome(REQUEUE)
        return outcomes, stop

    def _report(self) -> None:
        led = self.ledger
        total = len(self.entries)
        done = led.settled
        step = max(1, int(total * PROGRESS_LOG_STEP))
        if done == total or self._logged_done < 0 or done - self._logged_done >= step:
            self._logged_done = done
            log.info(
                "batch progress: %d/%d entries done, %d errors, %d calls finished",
                done,
                total,
                led.errors,
                self.calls.finished,
            )
        if self.settings.progress is not None:
            self.settings.progress(done, total, led.errors)

    def _round(self, chunks: list[list[int]], pool: ThreadPoolExecutor) -> tuple[bool, BaseException | None]:
        """Run one round's calls; returns (something to send again, what stopped the batch)."""
        need_retry = False
        stop: BaseException | None = None
        if len(chunks) == 1 or self.settings.max_concurrency == 1:
            for chunk in chunks:
                try:
                    outcomes, halt = self._run_chunk(chunk)
                    need_retry |= self.ledger.merge(outcomes)
                    self._report()
                except BaseException as exc:
                    return need_retry, exc
                if halt is not None:
                    return need_retry, halt
            return need_retry, None
        # Each call reports its end on a queue (one wake-up per call; ``wait(FIRST_COMPLETED)`` costs
        # a pass over every pending call each time). Cancelled calls report too.
        finished: queue.SimpleQueue[ChunkFuture] = queue.SimpleQueue()
        futures: list[ChunkFuture] = []
        for chunk in chunks:
            future = pool.submit(self._run_chunk, chunk)
            future.add_done_callback(finished.put)
            futures.append(future)
        for _ in futures:
            fut = finished.get()
            if fut.cancelled():
                continue
            try:
                outcomes, halt = fut.result()
                need_retry |= self.ledger.merge(outcomes)
                self._report()
            except BaseException as exc:  # kept: raised once the calls in flight are merged
                halt = None
                stop = stop or exc
            stop = stop or halt
            if stop is not None:
                # Calls not yet started are not made; those in flight finish and are kept.
                for other in futures:
                    other.cancel()
        return need_retry, stop

    def run(self) -> list[dict[str, Any]]:
        led = self.ledger
        if led.restore():
            log.info("batch: %d of %d entries settled by an earlier try", led.restored, len(self.entries))
        retry_rounds = 0
        stop: BaseException | None = None
        pool = ThreadPoolExecutor(max_workers=self.settings.max_concurrency, thread_name_prefix="graph-batch")
        try:
            while not all(led.done):
                ready = self._ready()
                if not ready:
                    if all(led.done):
                        break
                    raise RuntimeError("batch: no entry is ready but some are pending (dependency bug)")
                chunks, _deferred = plan_chunks(
                    self.entries,
                    ready,
                    chunk_size=self.settings.chunk_size,
                    max_ads_per_chunk=self.settings.max_ads_per_chunk,
                    max_adsets_per_campaign_per_chunk=self.settings.max_adsets_per_campaign_per_chunk,
                )
                need_retry, stop = self._round(chunks, pool)
                if stop is not None:
                    break
                if need_retry and not all(led.done):
                    delay = min(self.settings.round_backoff_max, self.round_backoff * (2**retry_rounds))
                    retry_rounds += 1
                    if delay > 0:
                        log.info(
                            "batch: %d entries not done yet, next round in %.2fs",
                            led.done.count(False),
                            delay,
                        )
                        time.sleep(delay)
            if stop is None:
                led.save()
        except Exception as exc:  # a journal store, a progress callback... : stop with what we have
            stop = exc
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        if stop is not None:
            if not isinstance(stop, Exception):
                raise stop  # the process is going away (KeyboardInterrupt, SystemExit...)
            self._raise_stopped(stop)
        return [self._output(i) for i in range(len(self.entries))]

    def _raise_stopped(self, cause: Exception) -> None:
        results = self.ledger.partial(self._output)
        settled = sum(r is not None for r in results)
        scrub = self.core.scrub
        message = scrub(
            f"batch stopped: {settled} of {len(results)} entries settled, "
            f"{len(results) - settled} not sent or not done: {type(cause).__name__}: {cause}"
        )
        log.error("%s", message)
        raise GraphBatchError(message, results=results, cause=cause) from cause

    def _output(self, index: int) -> dict[str, Any]:
        """The caller's ``{"code", "headers", "body"}`` for one settled entry.

        Every result dict is built for its entry alone and the ledger goes with the run, so the
        result itself is handed over when nothing is to change in it (the common case).
        """
        result = self.ledger.results[index]
        assert result is not None
        omit = self.entries[index].omit_response_on_success and not entry_failed(result)
        if self.settings.include_headers and not omit and len(result) == 3:
            return result
        return {
            "code": result.get("code", 0),
            "headers": (result.get("headers") or {}) if self.settings.include_headers else {},
            "body": None if omit else result.get("body"),
        }


def run_batch(
    client: BatchClient,
    requests: Any,
    *,
    files: Mapping[str, FileSource] | None = None,
    validated: Sequence[BatchEntry] | None = None,
    journal: BatchJournal | None = None,
    **settings: Any,
) -> list[dict[str, Any]]:
    """Run a standard batch of any size; one result per request, in input order.

    :param client: the hook (:class:`BatchClient`) whose ``request`` makes the calls.
    :param requests: list of dicts (``method``, ``relative_url``, optional ``body``, ``name``,
        ``depends_on``, ``omit_response_on_success``, ``attached_files``, ``headers``, ``idempotent``).
    :param files: multipart parts for ``attached_files``: part name -> path or bytes.
    :param settings: :class:`BatchSettings` fields (``max_concurrency``, ``chunk_size``, ...);
        an unknown name raises TypeError, a bad value GraphInputError, before any call.
    :param validated: what :func:`validate_requests` returned for these same ``requests`` and
        ``files`` (the operator validates before it builds the hook; this skips doing it twice).
    :param journal: keeps the run's state across tries (:mod:`.batch_journal`).
    :raises GraphBatchError: when the batch cannot go on; it carries ``results`` and ``cause``.
    """
    tuning = BatchSettings(**settings)
    entries = list(validated) if validated is not None else validate_requests(requests, files)
    if validated is not None and (
        len(entries) != len(requests) or not all(isinstance(e, BatchEntry) for e in entries)
    ):
        raise GraphInputError("validated entries do not match the requests")
    if journal is not None and not isinstance(journal, BatchJournal):
        raise GraphInputError(f"journal must have load() and save(state), got {type(journal).__name__}")
    if not entries:
        return []
    return BatchRunner(client, entries, tuning, files=validate_files(files), journal=journal).run()
