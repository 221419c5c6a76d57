"""One standard batch call: build the wire entries, send them through the hook, read the answer.

:class:`CallMaker` turns a list of ready entry indices into one ``POST /`` (halving it on code 1 /
960) and gives every entry an :class:`~.batch_outcomes.Outcome`; :mod:`.batch` runs the rounds. It
talks to the hook only through the typed :class:`BatchClient` protocol.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote

from airflow_fb_async.exceptions import GraphAmbiguousError, GraphAPIError, GraphAuthError
from airflow_fb_async.hooks import jsonpath
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
    graph_error,
    headers_to_dict,
    is_ambiguous,
    parse_body,
    unknown_outcome,
)
from airflow_fb_async.hooks.etag import EtagCache
from airflow_fb_async.hooks.paging import clean_paging
from airflow_fb_async.hooks.retry import AUTH_CODES
from airflow_fb_async.hooks.throttle import accounts_in
from airflow_fb_async.hooks.urls import split_path

if TYPE_CHECKING:
    from airflow_fb_async.hooks.batch_validate import BatchEntry, FileSource
    from airflow_fb_async.hooks.call import GraphCore

log = logging.getLogger("airflow_fb_async.hooks.batch")

# Whole-call codes that mean "send less per call".
SHRINK_CODES = frozenset({1, 960})

_USAGE_HEADERS = frozenset({"x-app-usage", "x-ad-account-usage", "x-business-use-case-usage"})
_VERSION_RE = re.compile(r"^v\d+(\.\d+)?(/|$)")


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


class BatchStopped(Exception):
    """The batch cannot go on (the token was rejected): carries Graph's error."""

    def __init__(self, error: GraphAPIError) -> None:
        super().__init__(str(error))
        self.error = error


def jsonpath_accounts(entry: BatchEntry) -> list[str]:
    """Ad account keys an entry touches (for ``X-Ad-Account-Usage``, which does not name it)."""
    return accounts_in(entry.relative_url)


class CallMaker:
    """Makes the calls of one batch run (thread-safe: the runner's threads share it)."""

    def __init__(
        self,
        client: BatchClient,
        entries: list[BatchEntry],
        files: Mapping[str, FileSource],
        ledger: BatchLedger,
    ) -> None:
        self.client = client
        self.core = client.core
        self.entries = entries
        self.files = files
        self.ledger = ledger
        self.finished = 0  # calls whose POST / is over (answered or given up): progress lines
        self._finished_lock = threading.Lock()
        self._names = {e.name: e.index for e in entries if e.name}
        self._account: dict[int, str | None] = {}  # entry index -> the ad account its usage is about
        self._with_files = any(e.attached_files for e in entries)  # else no call walks its entries for parts

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
            blocked = [d for d in entry.deps if d in id_set and d not in in_call] if entry.deps else None
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
                wire.append(self._wire_entry(entry, id_set, outcomes))  # in_call is a subset of id_set
            except _ResolveError as exc:
                outcomes[i] = Outcome(DONE, exc.result)
                continue
            in_call.add(i)
            sent.append(i)
        return sent, wire

    def _file_parts(self, indices: Iterable[int]) -> dict[str, tuple[str, bytes]] | None:
        if not self._with_files:
            return None
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

    def send(self, ids: list[int], outcomes: dict[int, Outcome]) -> None:
        """Send ``ids`` (sorted) in one call, halving on code 1 / 960; fill ``outcomes``."""
        sent, wire = self._prepare(ids, outcomes)
        if not sent:
            return
        repeatable = all(self.entries[i].repeatable for i in sent)
        data = {"batch": json.dumps(wire, separators=(",", ":")), "include_headers": "true"}
        files = self._file_parts(sent)
        self.ledger.mark_in_flight(sent)
        try:
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
            finally:
                with self._finished_lock:
                    self.finished += 1
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
                raise BatchStopped(exc) from exc
            # A definite error of the whole call (after the hook's retries): nothing ran.
            err = exc.to_dict()
            for i in sent:
                outcomes[i] = Outcome(
                    DONE, {"code": exc.http_status or 500, "headers": {}, "body": {"error": err}}
                )
            return
        self._read_answer(sent, response, outcomes)

    def _send_halves(self, ids: list[int], outcomes: dict[int, Outcome]) -> None:
        half = (len(ids) + 1) // 2
        log.info(
            "batch: a call of %d entries was too big for Graph, retrying in halves of %d", len(ids), half
        )
        self.send(ids[:half], outcomes)
        rest = []
        for i in ids[half:]:
            if any(d in outcomes and outcomes[d].kind != DONE for d in self.entries[i].deps):
                outcomes[i] = Outcome(REQUEUE)
            else:
                rest.append(i)
        if rest:
            self.send(rest, outcomes)

    def _read_answer(self, sent: list[int], response: Any, outcomes: dict[int, Outcome]) -> None:
        answers = response if isinstance(response, list) else []
        usage = _UsageSeen()
        in_call = set(sent)
        entries = self.entries
        for pos, i in enumerate(sent):
            entry = entries[i]
            raw = answers[pos] if pos < len(answers) else False
            if raw is None:
                own = Outcome(RETRY, None)
            elif type(raw) is dict or isinstance(raw, Mapping):
                result = self._to_result(entry, raw, usage)
                if 0 < result["code"] < 400 and graph_error(result["body"]) is None:
                    outcomes[i] = Outcome(DONE, result)  # hot: succeeded (what classify_answer says)
                    continue
                own = classify_answer(entry, result)
                if own.kind == DONE and not entry_failed(own.result):
                    outcomes[i] = own
                    continue
            else:
                # Graph's answer has no usable entry here (too short, not an object): unlike a
                # documented ``null``, nothing says this entry did not run.
                outcomes[i] = unknown_outcome(entry, "Graph's batch answer had no entry for it")
                continue
            if entry.deps and not (own.result is not None and is_ambiguous(own.result)):
                # Failed or not done: because a dependency in this call did not succeed?
                blocking = [d for d in entry.deps if d in in_call and self._succeeded(d, outcomes) is None]
                if blocking:
                    dep_out = outcomes.get(blocking[0])
                    own = (
                        Outcome(DONE, dependency_failed_entry(entries[blocking[0]]))
                        if dep_out is not None and dep_out.kind == DONE
                        else Outcome(REQUEUE)
                    )
            outcomes[i] = own

    def _to_result(self, entry: BatchEntry, raw: Mapping[str, Any], usage: _UsageSeen) -> dict[str, Any]:
        code = raw.get("code")
        if type(code) is not int or code < 0:  # hot path: Graph's code is a plain int
            code = int(code) if isinstance(code, int | float | str) and str(code).isdigit() else 0
        headers = headers_to_dict(raw.get("headers"))
        if headers:
            self._observe(entry, headers, usage)
        raw_body = raw.get("body")
        if isinstance(raw_body, str):
            # Only this connection's secrets (Graph writes the batch's token into paging links): a
            # page token asked for with fields=access_token is data and stays.
            raw_body = self.core.scrub.secrets_only(raw_body)
        body = clean_paging(parse_body(raw_body))
        if code in (200, 304) and entry.method == "GET":
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

    def _observe(self, entry: BatchEntry, headers: Mapping[str, str], seen: _UsageSeen) -> None:
        """Feed an entry's usage headers to the throttle (once per distinct reading in a call)."""
        index = entry.index
        if index in self._account:
            account = self._account[index]
        else:
            accounts = jsonpath_accounts(entry)
            account = self._account[index] = accounts[0] if accounts else None
        if account == seen.last_account and headers == seen.last_headers:
            return  # hot: the same headers as the entry before (usually all of a call's entries)
        seen.last_account, seen.last_headers = account, headers
        usage = [v for k, v in headers.items() if k.lower() in _USAGE_HEADERS]
        if not usage:
            return
        key = (account, *usage)
        if key in seen.keys:
            return
        seen.keys.add(key)
        self.core.throttle.observe(headers, account_id=account)


class _UsageSeen:
    """The usage readings already fed to the throttle during one call's answer."""

    __slots__ = ("keys", "last_account", "last_headers")

    def __init__(self) -> None:
        self.keys: set[tuple[Any, ...]] = set()
        self.last_account: str | None = None
        self.last_headers: Mapping[str, str] | None = None
