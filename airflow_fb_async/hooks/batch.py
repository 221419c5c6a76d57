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

import json
import logging
import re
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote

from airflow_fb_async.exceptions import (
    GraphAmbiguousError,
    GraphAPIError,
    GraphAuthError,
    GraphBatchError,
    GraphInputError,
)
from airflow_fb_async.hooks import jsonpath
from airflow_fb_async.hooks._core import EtagCache, clean_paging, split_path
from airflow_fb_async.hooks.batch_journal import BatchJournal
from airflow_fb_async.hooks.batch_outcomes import (
    DEPENDENCY_FAILED_TYPE,
    DONE,
    REQUEUE,
    RETRY,
    BatchLedger,
    Outcome,
    ambiguous_entry,
    classify_answer,
    dependency_failed_entry,
    entry_failed,
    error_entry,
    headers_to_dict,
    is_ambiguous,
    parse_body,
    unknown_outcome,
)
from airflow_fb_async.hooks.batch_plan import (
    DEFAULT_MAX_ADS_PER_CHUNK,
    DEFAULT_MAX_ADSETS_PER_CAMPAIGN_PER_CHUNK,
    plan_chunks,
)
from airflow_fb_async.hooks.batch_validate import (
    MAX_BATCH_SIZE,
    METHODS,
    BatchEntry,
    FileSource,
    validate_files,
    validate_requests,
)
from airflow_fb_async.hooks.encoding import encode_body
from airflow_fb_async.hooks.references import Reference, find_references
from airflow_fb_async.hooks.retry import AUTH_CODES

if TYPE_CHECKING:
    from airflow_fb_async.hooks._core import GraphCore

__all__ = [
    "DEFAULT_MAX_ADSETS_PER_CAMPAIGN_PER_CHUNK",
    "DEFAULT_MAX_ADS_PER_CHUNK",
    "MAX_BATCH_SIZE",
    "METHODS",
    "BatchClient",
    "BatchEntry",
    "BatchJournal",
    "BatchRunner",
    "Reference",
    "encode_body",
    "entry_failed",
    "error_entry",
    "find_references",
    "plan_chunks",
    "run_batch",
    "validate_files",
    "validate_requests",
]

log = logging.getLogger("airflow_fb_async.hooks.batch")

DEFAULT_MAX_ROUNDS = 10
# Whole-call codes that mean "send less per call".
SHRINK_CODES = frozenset({1, 960})
# Progress lines: at most about one per this fraction of the batch (and the last one).
PROGRESS_LOG_STEP = 0.05

_USAGE_HEADERS = frozenset({"x-app-usage", "x-ad-account-usage", "x-business-use-case-usage"})
_VERSION_RE = re.compile(r"^v\d+(\.\d+)?(/|$)")

ProgressCallback = Callable[[int, int, int], None]


class BatchClient(Protocol):
    """What the runner needs from the hook (:class:`GraphHook` is one): its calls and its core."""

    @property
    def core(self) -> GraphCore: ...

    def request(
        self,
        method: str,
        path: str,
        *,
        data: Mapping[str, Any] | str | None = None,
        files: Mapping[str, Any] | None = None,
        idempotent: bool | None = None,
        raise_codes: Collection[int] = frozenset(),
    ) -> Any: ...


class _ResolveError(Exception):
    """A reference or ``depends_on`` outside the call that cannot be filled in: the entry is 424."""

    def __init__(self, result: dict[str, Any]) -> None:
        super().__init__(result["body"]["error"]["message"])
        self.result = result


class _Stop(Exception):
    """The batch cannot go on (the token was rejected): carries Graph's error."""

    def __init__(self, error: GraphAPIError) -> None:
        super().__init__(str(error))
        self.error = error


def jsonpath_accounts(entry: BatchEntry) -> list[str]:
    """Ad account keys an entry touches (for ``X-Ad-Account-Usage``, which does not name it)."""
    found = re.findall(r"\bact_(\d+)", entry.relative_url)
    return list(dict.fromkeys(found))


class BatchRunner:
    """Runs one validated batch through a :class:`BatchClient`. Use :func:`run_batch`."""

    def __init__(
        self,
        client: BatchClient,
        entries: list[BatchEntry],
        *,
        files: dict[str, FileSource],
        include_headers: bool,
        max_concurrency: int,
        max_rounds: int,
        max_ads_per_chunk: int,
        max_adsets_per_campaign_per_chunk: int | None,
        chunk_size: int,
        progress: ProgressCallback | None,
        round_backoff: float | None,
        round_backoff_max: float,
        journal: BatchJournal | None = None,
    ) -> None:
        self.client = client
        self.core = client.core
        self.entries = entries
        self.files = files
        self.include_headers = include_headers
        self.max_concurrency = max(1, int(max_concurrency))
        self.max_ads_per_chunk = max(1, int(max_ads_per_chunk))
        self.max_adsets_per_campaign_per_chunk = (
            None
            if max_adsets_per_campaign_per_chunk is None
            else max(1, int(max_adsets_per_campaign_per_chunk))
        )
        self.chunk_size = max(1, min(int(chunk_size), MAX_BATCH_SIZE))
        self.progress = progress
        if round_backoff is None:
            round_backoff = self.core.policy.backoff_base
        self.round_backoff = max(0.0, round_backoff)
        self.round_backoff_max = round_backoff_max
        self.ledger = BatchLedger(entries, max(1, int(max_rounds)), journal)
        self._names = {e.name: e.index for e in entries if e.name}
        self._calls = 0
        self._logged_done = -1

    # ---- building a call -----------------------------------------------------------------------

    def _succeeded(self, index: int, local: Mapping[int, Outcome]) -> dict[str, Any] | None:
        """The successful result of an entry settled earlier (this run, or an earlier try), or in
        this call's outcomes so far."""
        if index in local:
            out = local[index]
            return out.result if out.kind == DONE and not entry_failed(out.result) else None
        return self.ledger.succeeded(index)

    def _wire_entry(
        self, entry: BatchEntry, in_call: set[int], local: Mapping[int, Outcome]
    ) -> dict[str, Any]:
        """The JSON object sent for ``entry``; references outside the call resolved client-side."""
        url, body = entry.relative_url, entry.body
        for ref in entry.references:
            target = self._names[ref.name]
            if target in in_call:
                continue
            result = self._succeeded(target, local)
            if result is None:
                raise _ResolveError(dependency_failed_entry(self.entries[target]))
            value = jsonpath.resolve(result.get("body"), ref.path)
            if value is None:
                raise _ResolveError(
                    error_entry(
                        424,
                        f"not sent: reference {ref.token} matched nothing in the result of {ref.name!r}",
                        DEPENDENCY_FAILED_TYPE,
                    )
                )
            encoded = quote(value, safe=",")
            url = url.replace(ref.token, encoded)
            if body is not None:
                body = body.replace(ref.token, encoded)
        wire: dict[str, Any] = {"method": entry.method, "relative_url": url}
        if body:
            wire["body"] = body
        if entry.name:
            wire["name"] = entry.name
            wire["omit_response_on_success"] = False
        in_call_deps = [d for d in entry.depends_on if self._names[d] in in_call]
        for d in entry.depends_on:
            if self._names[d] not in in_call and self._succeeded(self._names[d], local) is None:
                raise _ResolveError(dependency_failed_entry(self.entries[self._names[d]]))
        if in_call_deps:
            # Every name: Graph must not run the entry when any of them failed.
            wire["depends_on"] = in_call_deps[0] if len(in_call_deps) == 1 else in_call_deps
        if entry.attached_files:
            wire["attached_files"] = ",".join(entry.attached_files)
        if entry.headers:
            wire["headers"] = list(entry.headers)
        return wire

    def _prepare(
        self, ids: list[int], outcomes: dict[int, Outcome]
    ) -> tuple[list[int], list[dict[str, Any]]]:
        """The entries of ``ids`` that can be sent and their wire form; the others get outcomes."""
        id_set = set(ids)
        in_call: set[int] = set()
        sent: list[int] = []
        wire: list[dict[str, Any]] = []
        for i in ids:
            entry = self.entries[i]
            blocked = [d for d in entry.deps if d in id_set and d not in in_call]
            if blocked:
                # A dependency in this call is not sent: neither is this one.
                dep_out = outcomes.get(blocked[0])
                outcomes[i] = (
                    Outcome(DONE, dependency_failed_entry(self.entries[blocked[0]]))
                    if dep_out is not None and dep_out.kind == DONE
                    else Outcome(REQUEUE)
                )
                continue
            try:
                wire.append(self._wire_entry(entry, in_call | id_set, outcomes))
            except _ResolveError as exc:
                outcomes[i] = Outcome(DONE, exc.result)
                continue
            in_call.add(i)
            sent.append(i)
        return sent, wire

    def _file_parts(self, indices: Iterable[int]) -> dict[str, tuple[str, bytes]] | None:
        wanted: list[str] = []
        for i in indices:
            for part in self.entries[i].attached_files:
                if part not in wanted:
                    wanted.append(part)
        if not wanted:
            return None
        parts: dict[str, tuple[str, bytes]] = {}
        for part in wanted:
            source = self.files[part]
            if isinstance(source, bytes):
                parts[part] = (part, source)
            else:
                path = Path(source)
                parts[part] = (path.name, path.read_bytes())
        return parts

    # ---- one call ------------------------------------------------------------------------------

    def _send(self, ids: list[int], outcomes: dict[int, Outcome]) -> None:
        """Send ``ids`` (sorted) in one call, halving on code 1 / 960; fill ``outcomes``."""
        sent, wire = self._prepare(ids, outcomes)
        if not sent:
            return
        repeatable = all(self.entries[i].repeatable for i in sent)
        data = {"batch": json.dumps(wire, separators=(",", ":")), "include_headers": "true"}
        files = self._file_parts(sent)
        self.ledger.mark_in_flight(sent)
        self._calls += 1
        try:
            response = self.client.request(
                "POST",
                "",
                data=data,
                files=files,
                idempotent=repeatable,
                # One entry: code 1 is retried by the hook like any transient error (within the
                # uncertain-outcome rule); several: halve the call instead.
                raise_codes=SHRINK_CODES if len(sent) > 1 else frozenset(),
            )
        except GraphAmbiguousError as exc:
            # The call may have run: its non-repeatable entries are 504, the others are sent again.
            why = f"the batch call's outcome is unknown ({exc.message})"
            again = [i for i in sent if self.entries[i].repeatable]
            for i in sent:
                if not self.entries[i].repeatable:
                    outcomes[i] = Outcome(DONE, ambiguous_entry(self.entries[i], why))
            if exc.code in SHRINK_CODES and len(again) > 1:
                self._send_halves(again, outcomes)
            else:
                for i in again:
                    outcomes[i] = Outcome(RETRY, None)
            return
        except GraphAPIError as exc:
            if exc.code in SHRINK_CODES and len(sent) > 1:
                self._send_halves(sent, outcomes)
                return
            if isinstance(exc, GraphAuthError) or exc.code in AUTH_CODES:
                raise _Stop(exc) from exc
            # A definite error of the whole call (after the hook's retries): nothing ran.
            err = exc.to_dict()
            for i in sent:
                outcomes[i] = Outcome(
                    DONE, {"code": exc.status_code or 500, "headers": {}, "body": {"error": err}}
                )
            return
        self._read_answer(sent, response, outcomes)

    def _send_halves(self, ids: list[int], outcomes: dict[int, Outcome]) -> None:
        half = (len(ids) + 1) // 2
        log.info(
            "batch: a call of %d entries was too big for Graph, retrying in halves of %d", len(ids), half
        )
        self._send(ids[:half], outcomes)
        rest = []
        for i in ids[half:]:
            if any(d in outcomes and outcomes[d].kind != DONE for d in self.entries[i].deps):
                outcomes[i] = Outcome(REQUEUE)
            else:
                rest.append(i)
        if rest:
            self._send(rest, outcomes)

    def _read_answer(self, sent: list[int], response: Any, outcomes: dict[int, Outcome]) -> None:
        answers = response if isinstance(response, list) else []
        seen_usage: set[tuple[Any, ...]] = set()
        in_call = set(sent)
        for pos, i in enumerate(sent):
            entry = self.entries[i]
            raw = answers[pos] if pos < len(answers) else False
            if not (raw is None or isinstance(raw, Mapping)):
                # Graph's answer has no usable entry here (too short, not an object): unlike a
                # documented ``null``, nothing says this entry did not run.
                outcomes[i] = unknown_outcome(entry, "Graph's batch answer had no entry for it")
                continue
            own = (
                Outcome(RETRY, None)
                if raw is None
                else classify_answer(entry, self._to_result(entry, raw, seen_usage))
            )
            settled_ok = own.kind == DONE and not entry_failed(own.result)
            if not settled_ok and not (own.result is not None and is_ambiguous(own.result)):
                # Failed or not done: because a dependency in this call did not succeed?
                blocking = [d for d in entry.deps if d in in_call and self._succeeded(d, outcomes) is None]
                if blocking:
                    dep_out = outcomes.get(blocking[0])
                    own = (
                        Outcome(DONE, dependency_failed_entry(self.entries[blocking[0]]))
                        if dep_out is not None and dep_out.kind == DONE
                        else Outcome(REQUEUE)
                    )
            outcomes[i] = own

    def _to_result(
        self, entry: BatchEntry, raw: Mapping[str, Any], seen: set[tuple[Any, ...]]
    ) -> dict[str, Any]:
        code = raw.get("code")
        code = int(code) if isinstance(code, int | float | str) and str(code).isdigit() else 0
        headers = headers_to_dict(raw.get("headers"))
        if headers:
            self._observe(entry, headers, seen)
        raw_body = raw.get("body")
        if isinstance(raw_body, str):
            # Only this connection's secrets (Graph writes the batch's token into paging links): a
            # page token asked for with fields=access_token is data and stays.
            raw_body = self.core.scrub.secrets_only(raw_body)
        body = clean_paging(parse_body(raw_body))
        if entry.method == "GET" and code in (200, 304):
            body = self._etag_body(entry, code, headers, body)
        return {"code": code, "headers": headers, "body": body}

    def _etag_body(self, entry: BatchEntry, code: int, headers: Mapping[str, str], body: Any) -> Any:
        """Fill a 304 from the hook's ETag cache, or store a 200 there (as ``hook.get`` does)."""
        path, params = split_path(entry.relative_url)
        config = self.core.config
        url = f"{config.host}/{path}" if _VERSION_RE.match(path) else f"{config.base_url}/{path}"
        key = EtagCache.key("GET", url, params)
        if code == 304 and body is None:
            cached = self.core.etags.get(key)
            if cached is not None and cached[0] == self._sent_etag(entry):
                return cached[1]
        elif code == 200 and body is not None:
            etag = next((v for k, v in headers.items() if k.lower() == "etag"), None)
            if etag:
                self.core.etags.put(key, etag, body)
        return body

    def _sent_etag(self, entry: BatchEntry) -> str | None:
        for header in entry.headers:
            key, _, value = header.partition(":")
            if key.strip().lower() == "if-none-match":
                return value.strip()
        return None

    def _observe(self, entry: BatchEntry, headers: Mapping[str, str], seen: set[tuple[Any, ...]]) -> None:
        """Feed an entry's usage headers to the throttle (once per distinct reading in a call)."""
        accounts = jsonpath_accounts(entry)
        account = accounts[0] if accounts else None
        usage = tuple(v for k, v in headers.items() if k.lower() in _USAGE_HEADERS)
        if not usage:
            return
        key = (account, *usage)
        if key in seen:
            return
        seen.add(key)
        self.core.throttle.observe(headers, account_id=account)

    # ---- rounds --------------------------------------------------------------------------------

    def _ready(self) -> list[int]:
        """Pending entries whose dependencies are done or ready; dependents of failures finish."""
        led = self.ledger
        ready: set[int] = set()
        for e in self.entries:
            i = e.index
            if led.done[i]:
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
            self._send(ids, outcomes)
        except _Stop as exc:
            stop = exc.error
        for i in ids:
            outcomes.setdefault(i, Outcome(REQUEUE))
        return outcomes, stop

    def _report(self) -> None:
        led = self.ledger
        total = len(self.entries)
        done = sum(led.done)
        step = max(1, int(total * PROGRESS_LOG_STEP))
        if done == total or self._logged_done < 0 or done - self._logged_done >= step:
            self._logged_done = done
            log.info(
                "batch progress: %d/%d entries done, %d errors, %d calls",
                done,
                total,
                led.errors,
                self._calls,
            )
        if self.progress is not None:
            self.progress(done, total, led.errors)

    def _round(self, chunks: list[list[int]], pool: ThreadPoolExecutor) -> tuple[bool, BaseException | None]:
        """Run one round's calls; returns (something to send again, what stopped the batch)."""
        need_retry = False
        stop: BaseException | None = None
        if len(chunks) == 1 or self.max_concurrency == 1:
            for chunk in chunks:
                try:
                    outcomes, halt = self._run_chunk(chunk)
                except BaseException as exc:
                    return need_retry, exc
                need_retry |= self.ledger.merge(outcomes)
                self._report()
                if halt is not None:
                    return need_retry, halt
            return need_retry, None
        futures: set[Future[tuple[dict[int, Outcome], GraphAPIError | None]]] = {
            pool.submit(self._run_chunk, chunk) for chunk in chunks
        }
        while futures:
            finished, futures = wait(futures, return_when=FIRST_COMPLETED)
            for fut in finished:
                if fut.cancelled():
                    continue
                try:
                    outcomes, halt = fut.result()
                except BaseException as exc:
                    halt = None
                    stop = stop or exc
                else:
                    need_retry |= self.ledger.merge(outcomes)
                    self._report()
                stop = stop or halt
            if stop is not None:
                # Calls not yet started are not made; those in flight finish and are kept.
                for fut in futures:
                    fut.cancel()
        return need_retry, stop

    def run(self) -> list[dict[str, Any]]:
        led = self.ledger
        if led.restore():
            log.info("batch: %d of %d entries settled by an earlier try", led.restored, len(self.entries))
        retry_rounds = 0
        stop: BaseException | None = None
        pool = ThreadPoolExecutor(max_workers=self.max_concurrency, thread_name_prefix="graph-batch")
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
                    chunk_size=self.chunk_size,
                    max_ads_per_chunk=self.max_ads_per_chunk,
                    max_adsets_per_campaign_per_chunk=self.max_adsets_per_campaign_per_chunk,
                )
                need_retry, stop = self._round(chunks, pool)
                if stop is not None:
                    break
                if need_retry and not all(led.done):
                    delay = min(self.round_backoff_max, self.round_backoff * (2**retry_rounds))
                    retry_rounds += 1
                    if delay > 0:
                        log.info(
                            "batch: %d entries not done yet, next round in %.2fs",
                            led.done.count(False),
                            delay,
                        )
                        time.sleep(delay)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        if stop is not None:
            if not isinstance(stop, Exception):
                raise stop  # the process is going away (KeyboardInterrupt, SystemExit...)
            self._raise_stopped(stop)
        led.save()
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
        result = self.ledger.results[index]
        assert result is not None
        entry = self.entries[index]
        body = result.get("body")
        if entry.omit_response_on_success and not entry_failed(result):
            body = None
        return {
            "code": result.get("code", 0),
            "headers": dict(result.get("headers") or {}) if self.include_headers else {},
            "body": body,
        }


def run_batch(
    client: BatchClient,
    requests: Any,
    *,
    include_headers: bool = True,
    files: Mapping[str, FileSource] | None = None,
    max_concurrency: int = 4,
    max_rounds: int = DEFAULT_MAX_ROUNDS,
    max_ads_per_chunk: int = DEFAULT_MAX_ADS_PER_CHUNK,
    max_adsets_per_campaign_per_chunk: int | None = DEFAULT_MAX_ADSETS_PER_CAMPAIGN_PER_CHUNK,
    chunk_size: int = MAX_BATCH_SIZE,
    progress: ProgressCallback | None = None,
    round_backoff: float | None = None,
    round_backoff_max: float = 30.0,
    validated: Sequence[BatchEntry] | None = None,
    journal: BatchJournal | None = None,
) -> list[dict[str, Any]]:
    """Run a standard batch of any size; one result per request, in input order.

    :param client: the hook (:class:`BatchClient`) whose ``request`` makes the calls.
    :param requests: list of dicts (``method``, ``relative_url``, optional ``body``, ``name``,
        ``depends_on``, ``omit_response_on_success``, ``attached_files``, ``headers``, ``idempotent``).
    :param include_headers: keep each entry's response headers in the results.
    :param files: multipart parts for ``attached_files``: part name -> path or bytes.
    :param max_concurrency: calls in flight at once.
    :param max_rounds: attempts per entry answered ``null`` (or with a retryable error).
    :param max_ads_per_chunk: ad-creating POSTs (``.../ads``) per call (Marketing API guidance).
    :param max_adsets_per_campaign_per_chunk: ad-set-creating POSTs (``.../adsets``) naming the same
        ``campaign_id`` (an id, or the same reference text) per call; None for no limit.
    :param chunk_size: entries per call (at most 50).
    :param progress: ``progress(done, total, errors)`` after every call.
    :param round_backoff: base pause between retry rounds (default: the connection's backoff_base).
    :param round_backoff_max: cap of that pause.
    :param validated: what :func:`validate_requests` returned for these same ``requests`` and
        ``files`` (the operator validates before it builds the hook; this skips doing it twice).
    :param journal: keeps the run's state across tries (:mod:`.batch_journal`).
    :raises GraphBatchError: when the batch cannot go on; it carries ``results`` and ``cause``.
    """
    entries = list(validated) if validated is not None else validate_requests(requests, files)
    if validated is not None and (
        len(entries) != len(requests) or not all(isinstance(e, BatchEntry) for e in entries)
    ):
        raise GraphInputError("validated entries do not match the requests")
    if not entries:
        return []
    if not isinstance(max_concurrency, int) or max_concurrency < 1:
        raise GraphInputError(f"max_concurrency must be a positive integer, got {max_concurrency!r}")
    if not isinstance(chunk_size, int) or not 1 <= chunk_size <= MAX_BATCH_SIZE:
        raise GraphInputError(f"chunk_size must be an integer from 1 to {MAX_BATCH_SIZE}, got {chunk_size!r}")
    if not isinstance(max_rounds, int) or max_rounds < 1:
        raise GraphInputError(f"max_rounds must be a positive integer, got {max_rounds!r}")
    if journal is not None and not isinstance(journal, BatchJournal):
        raise GraphInputError(f"journal must have load() and save(state), got {type(journal).__name__}")
    runner = BatchRunner(
        client,
        entries,
        files=validate_files(files),
        include_headers=include_headers,
        max_concurrency=max_concurrency,
        max_rounds=max_rounds,
        max_ads_per_chunk=max_ads_per_chunk,
        max_adsets_per_campaign_per_chunk=max_adsets_per_campaign_per_chunk,
        chunk_size=chunk_size,
        progress=progress,
        round_backoff=round_backoff,
        round_backoff_max=round_backoff_max,
        journal=journal,
    )
    return runner.run()
