"""Standard batch engine behind :meth:`GraphHook.batch` (``POST /`` with a ``batch`` form field).

Pipeline: :func:`validate_requests` (pure, before any HTTP call) -> rounds of
:func:`plan_chunks` (pure) -> calls through ``hook.request`` -> per-entry outcomes -> one result per
request, in input order: ``{"code": int, "headers": {name: value}, "body": <parsed JSON or None>}``.

Rules this module implements (see ``GRAPH_NOTES.md`` for the Graph facts):

- **References and ``depends_on`` point to earlier entries.** Graph runs a batch in order and only
  resolves ``{result=NAME:$.path}`` against entries that came before; a reference to a later entry
  (or to itself) is rejected at validation, which also rules out cycles.
- **Dependency-aware chunking.** Entries linked by references / ``depends_on`` form components. A
  component that fits in one call (``chunk_size``, at most ``max_ads_per_chunk`` ad-creating POSTs,
  at most ``max_adsets_per_campaign_per_chunk`` ad-set-creating POSTs naming one ``campaign_id``)
  travels in one call, in input order, and Graph resolves its references. A bigger one is cut into
  successive calls: references to entries of earlier calls are resolved client-side
  (:mod:`airflow_fb_async.hooks.jsonpath`) before sending. Small components are packed first-fit,
  so N independent requests take ``ceil(N / 50)`` calls.
- **``null`` means "not done".** Every named entry is sent with
  ``omit_response_on_success: false`` (a user's ``true`` is applied client-side: the body is dropped
  from the result), so a ``null`` entry is always a request that did not complete. It is sent again
  in a later round (with backoff between rounds), together with its dependents in that call that
  did not succeed; successful entries are never resent. After ``max_rounds`` attempts it becomes an
  error entry (code 503, type ``BatchEntryIncomplete``). Entry errors Graph marks as transient
  (codes 1/2, ``is_transient``, throttling, 5xx) are retried the same way.
- **Whole-call failures.** Code 1 ("reduce the amount of data") or 960: the call is halved and
  retried (down to single entries, then error entries). A dropped connection after sending
  (:class:`GraphAmbiguousError`) on a call with writes: the writes become error entries (code 504,
  type ``BatchEntryAmbiguous``: they may or may not have taken effect) and are never resent; only
  its GETs are retried. An auth error aborts the batch; any other error after the hook's own
  retries turns that call's entries into error entries.
- **Headers.** Usage headers of every entry feed ``hook.throttle`` (so the wire always asks for
  headers; ``include_headers=False`` only strips them from the results).
- **Files.** ``files={"part": path_or_bytes}``; each call carries only the parts its entries name in
  ``attached_files``; paths are read when the call is made.
- **Concurrency.** The calls of a round run on up to ``max_concurrency`` threads sharing the hook
  (pooled session, throttle state). Calls of one long chain run one per round, in order.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote

from airflow_fb_async.exceptions import (
    GraphAmbiguousError,
    GraphAPIError,
    GraphAuthError,
    GraphInputError,
)
from airflow_fb_async.hooks import jsonpath
from airflow_fb_async.hooks._core import clean_paging
from airflow_fb_async.hooks.encoding import encode_body as encode_body
from airflow_fb_async.hooks.references import ENC_REF_RE as ENC_REF_RE
from airflow_fb_async.hooks.references import REF_RE as REF_RE
from airflow_fb_async.hooks.references import Reference as Reference
from airflow_fb_async.hooks.references import find_references as find_references
from airflow_fb_async.hooks.references import has_reference_marker
from airflow_fb_async.hooks.retry import AUTH_CODES, THROTTLE_CODES, TRANSIENT_CODES

if TYPE_CHECKING:
    from airflow_fb_async.hooks.graph import GraphHook

log = logging.getLogger("airflow_fb_async.hooks.batch")

MAX_BATCH_SIZE = 50
DEFAULT_MAX_ROUNDS = 10
DEFAULT_MAX_ADS_PER_CHUNK = 10
DEFAULT_MAX_ADSETS_PER_CAMPAIGN_PER_CHUNK = 1
METHODS = frozenset({"GET", "POST", "DELETE"})
ENTRY_KEYS = frozenset(
    {
        "method",
        "relative_url",
        "body",
        "name",
        "depends_on",
        "omit_response_on_success",
        "attached_files",
        "headers",
    }
)
# Whole-call codes that mean "send less per call".
SHRINK_CODES = frozenset({1, 960})

_NAME_FORBIDDEN = re.compile(r"[:{}\s,]")
_USAGE_HEADERS = frozenset({"x-app-usage", "x-ad-account-usage", "x-business-use-case-usage"})
_VERSION_RE = re.compile(r"^v\d+(\.\d+)?(/|$)")
_HEADER_NAME_RE = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")

ProgressCallback = Callable[[int, int, int], None]
FileSource = str | os.PathLike[str] | bytes


# --------------------------------------------------------------------------------------------------
# Validation and normalisation (pure)
# --------------------------------------------------------------------------------------------------


@dataclass
class BatchEntry:
    """A validated request, ready to plan and encode."""

    index: int
    method: str
    relative_url: str
    body: str | None = None
    name: str | None = None
    depends_on: tuple[str, ...] = ()
    omit_response_on_success: bool | None = None
    attached_files: tuple[str, ...] = ()
    headers: tuple[str, ...] = ()
    references: tuple[Reference, ...] = ()
    deps: tuple[int, ...] = ()  # indices of entries this one references or depends on
    is_ad_create: bool = False
    adset_campaign: str | None = None  # campaign_id (id or reference text) of an ad-set-creating POST

    @property
    def label(self) -> str:
        return f"#{self.index}" + (f" {self.name!r}" if self.name else "")


def _fail(message: str, index: int | None = None, name: str | None = None) -> GraphInputError:
    return GraphInputError(message, index=index, name=name)


def _normalise_headers(raw: Any, index: int, name: str | None) -> tuple[str, ...]:
    if raw is None:
        return ()
    pairs: list[tuple[Any, Any]] = []
    if isinstance(raw, Mapping):
        pairs = list(raw.items())
    elif isinstance(raw, list | tuple):
        for item in raw:
            if isinstance(item, str):
                if ":" not in item:
                    raise _fail(f"header {item!r} is not 'Name: value'", index, name)
                key, _, value = item.partition(":")
                pairs.append((key.strip(), value.strip()))
            elif isinstance(item, Mapping) and "name" in item and "value" in item:
                pairs.append((item["name"], item["value"]))
            else:
                raise _fail(
                    f"headers must be 'Name: value' strings or {{'name', 'value'}} dicts, got {item!r}",
                    index,
                    name,
                )
    else:
        raise _fail(f"headers must be a dict or a list, got {type(raw).__name__}", index, name)
    out = []
    for key, value in pairs:
        if not isinstance(key, str) or not _HEADER_NAME_RE.match(key):
            raise _fail(f"bad header name {key!r}", index, name)
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise _fail(f"header {key!r} must have a string value, got {type(value).__name__}", index, name)
        text = str(value)
        if "\r" in text or "\n" in text:
            raise _fail(f"header {key!r} value contains a line break", index, name)
        out.append(f"{key}: {text}")
    return tuple(out)


def _names_list(raw: Any, what: str, index: int, name: str | None) -> tuple[str, ...]:
    if raw is None:
        return ()
    items = raw.split(",") if isinstance(raw, str) else raw
    if not isinstance(items, list | tuple):
        raise _fail(f"{what} must be a string or a list of strings, got {type(raw).__name__}", index, name)
    out: list[str] = []
    for item in items:
        if not isinstance(item, str) or not item.strip():
            raise _fail(f"{what} must hold non-empty strings, got {item!r}", index, name)
        if item.strip() not in out:
            out.append(item.strip())
    return tuple(out)


def _is_ad_create(method: str, relative_url: str) -> bool:
    path = relative_url.split("?", 1)[0].rstrip("/")
    return method == "POST" and (path == "ads" or path.endswith("/ads"))


def _adset_campaign(method: str, relative_url: str, body: str | None) -> str | None:
    """The ``campaign_id`` an ad-set-creating POST (``.../adsets``) names, as written (an id or a
    reference text); None for anything else."""
    path = relative_url.split("?", 1)[0].rstrip("/")
    if method != "POST" or not (path == "adsets" or path.endswith("/adsets")) or not body:
        return None
    values = [v.strip() for k, v in parse_qsl(body, keep_blank_values=True) if k.strip() == "campaign_id"]
    return values[-1] if values and values[-1] else None


def validate_files(files: Any) -> dict[str, FileSource]:
    """Check the ``files`` mapping (part name -> path or bytes); paths must be readable files."""
    if files is None:
        return {}
    if not isinstance(files, Mapping):
        raise GraphInputError(
            f"files must be a dict of part name -> path or bytes, got {type(files).__name__}"
        )
    out: dict[str, FileSource] = {}
    for key, value in files.items():
        if not isinstance(key, str) or not key:
            raise GraphInputError(f"files: part names must be non-empty strings, got {key!r}")
        if isinstance(value, bytes | bytearray):
            out[key] = bytes(value)
        elif isinstance(value, str | os.PathLike):
            if not Path(value).is_file():
                raise GraphInputError(f"files: part {key!r}: {os.fspath(value)!r} is not a readable file")
            out[key] = value
        else:
            raise GraphInputError(f"files: part {key!r} must be a path or bytes, got {type(value).__name__}")
    return out


def validate_requests(requests: Any, files: Any = None) -> list[BatchEntry]:
    """Validate and normalise a standard batch; raise :class:`GraphInputError` naming the entry.

    Pure: no HTTP, no connection. Called by the hook and by :class:`GraphBatchOperator` before
    anything is sent.
    """
    if isinstance(requests, str | bytes | Mapping) or not isinstance(requests, Sequence):
        raise GraphInputError(f"requests must be a list of dicts, got {type(requests).__name__}")
    file_map = validate_files(files)
    entries: list[BatchEntry] = []
    names: dict[str, int] = {}
    for index, raw in enumerate(requests):
        if not isinstance(raw, Mapping):
            raise _fail(f"must be a dict, got {type(raw).__name__}", index)
        name = raw.get("name")
        if name is not None and (not isinstance(name, str) or not name or _NAME_FORBIDDEN.search(name)):
            raise _fail(
                f"name must be a non-empty string without spaces, ',', ':', '{{' or '}}', got {name!r}", index
            )
        if not ENTRY_KEYS.issuperset(raw.keys()):
            unknown = sorted(str(k) for k in raw if k not in ENTRY_KEYS)
            raise _fail(f"unknown key(s) {unknown}; allowed: {sorted(ENTRY_KEYS)}", index, name)
        method = raw.get("method")
        if not isinstance(method, str) or not method.strip():
            raise _fail("missing 'method' (GET, POST or DELETE)", index, name)
        method = method.strip().upper()
        if method not in METHODS:
            raise _fail(f"unknown method {raw['method']!r} (GET, POST or DELETE)", index, name)
        relative_url = raw.get("relative_url")
        if relative_url is None:
            raise _fail("missing 'relative_url'", index, name)
        if not isinstance(relative_url, str):
            raise _fail(f"relative_url must be a string, got {type(relative_url).__name__}", index, name)
        relative_url = relative_url.strip().lstrip("/")
        if not relative_url:
            raise _fail("relative_url is empty", index, name)
        if any(c in relative_url for c in "\r\n"):
            raise _fail("relative_url contains a line break", index, name)
        body_raw = raw.get("body")
        if body_raw is not None and not isinstance(body_raw, str | Mapping):
            raise _fail(
                f"body must be a URL-encoded string or a dict, got {type(body_raw).__name__}", index, name
            )
        body = encode_body(body_raw, index=index, name=name) or None
        if body and method != "POST":
            raise _fail(f"{method} requests cannot have a body (put parameters in relative_url)", index, name)
        omit = raw.get("omit_response_on_success")
        if omit is not None and not isinstance(omit, bool):
            raise _fail(f"omit_response_on_success must be true or false, got {omit!r}", index, name)
        attached = _names_list(raw.get("attached_files"), "attached_files", index, name)
        for part in attached:
            if part not in file_map:
                raise _fail(f"attached_files names {part!r}, which is not in files", index, name)
        depends_on = _names_list(raw.get("depends_on"), "depends_on", index, name)
        headers = _normalise_headers(raw.get("headers"), index, name)

        references: list[Reference] = []
        for text in (relative_url, body):
            if has_reference_marker(text):
                found = find_references(text)
                if not found:
                    raise _fail("malformed reference: expected {result=NAME:$.path}", index, name)
                references += found
        deps: list[int] = []
        for target, what in [(d, "depends_on") for d in depends_on] + [
            (r.name, f"reference {r.token}") for r in references
        ]:
            if name is not None and target == name:
                raise _fail(f"{what} refers to the entry itself", index, name)
            if target not in names:
                later = [
                    i for i, r in enumerate(requests) if isinstance(r, Mapping) and r.get("name") == target
                ]
                if later:
                    raise _fail(
                        f"{what} refers to {target!r} (#{later[0]}), which comes later: Graph resolves "
                        "references and depends_on only to earlier entries of the batch",
                        index,
                        name,
                    )
                raise _fail(f"{what} refers to unknown name {target!r}", index, name)
            if names[target] not in deps:
                deps.append(names[target])
        for ref in references:
            try:
                jsonpath.compile_path(ref.path)
            except jsonpath.JSONPathError as exc:
                raise _fail(f"reference {ref.token}: {exc}", index, name) from None
        if name is not None:
            if name in names:
                raise _fail(f"duplicate name {name!r} (already used by #{names[name]})", index, name)
            names[name] = index
        entries.append(
            BatchEntry(
                index=index,
                method=method,
                relative_url=relative_url,
                body=body,
                name=name,
                depends_on=depends_on,
                omit_response_on_success=omit,
                attached_files=attached,
                headers=headers,
                references=tuple(references),
                deps=tuple(sorted(deps)),
                is_ad_create=_is_ad_create(method, relative_url),
                adset_campaign=_adset_campaign(method, relative_url, body),
            )
        )
    return entries


# --------------------------------------------------------------------------------------------------
# Chunk planning (pure)
# --------------------------------------------------------------------------------------------------


def plan_chunks(
    entries: Sequence[BatchEntry],
    ready: Iterable[int],
    *,
    chunk_size: int = MAX_BATCH_SIZE,
    max_ads_per_chunk: int = DEFAULT_MAX_ADS_PER_CHUNK,
    max_adsets_per_campaign_per_chunk: int | None = DEFAULT_MAX_ADSETS_PER_CAMPAIGN_PER_CHUNK,
) -> tuple[list[list[int]], list[int]]:
    """Pack the ``ready`` entries into calls; return ``(chunks, deferred)``.

    Components (entries linked by dependencies among ``ready``) that fit stay whole and are packed
    first-fit in input order. A component that does not fit contributes its longest fitting prefix
    (input order is a topological order, so a prefix is closed under dependencies); the rest is
    deferred to a later round, when its references to the prefix are resolved client-side.
    "Fit" means at most ``chunk_size`` entries, ``max_ads_per_chunk`` ad creates and
    ``max_adsets_per_campaign_per_chunk`` ad set creates per ``campaign_id`` (None: no limit).
    """
    size = max(1, min(int(chunk_size), MAX_BATCH_SIZE))
    ads_cap = max(1, int(max_ads_per_chunk))
    adsets_cap = (
        None if max_adsets_per_campaign_per_chunk is None else max(1, int(max_adsets_per_campaign_per_chunk))
    )

    def campaigns_of(ids: Iterable[int]) -> Counter[str]:
        if adsets_cap is None:
            return Counter()
        return Counter(c for c in (entries[i].adset_campaign for i in ids) if c is not None)

    def campaigns_fit(a: Counter[str], b: Counter[str]) -> bool:
        return adsets_cap is None or all(a[c] + n <= adsets_cap for c, n in b.items())

    ready_sorted = sorted(set(ready))
    ready_set = set(ready_sorted)
    parent = {i: i for i in ready_sorted}

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in ready_sorted:
        for d in entries[i].deps:
            if d in ready_set:
                a, b = root(i), root(d)
                if a != b:
                    parent[max(a, b)] = min(a, b)
    components: dict[int, list[int]] = {}
    for i in ready_sorted:
        components.setdefault(root(i), []).append(i)

    chunks: list[list[int]] = []
    loads: list[tuple[int, int, Counter[str]]] = []  # (entries, ads, ad sets per campaign) per chunk
    open_chunks: list[int] = []
    deferred: list[int] = []
    for comp in sorted(components.values(), key=lambda c: c[0]):
        ads = sum(1 for i in comp if entries[i].is_ad_create)
        camps = campaigns_of(comp)
        piece = comp
        if len(comp) > size or ads > ads_cap or not campaigns_fit(Counter(), camps):
            piece, n_ads, camps = [], 0, Counter()
            for pos, i in enumerate(comp):
                extra = 1 if entries[i].is_ad_create else 0
                extra_camps = campaigns_of([i])
                if len(piece) + 1 > size or n_ads + extra > ads_cap or not campaigns_fit(camps, extra_camps):
                    deferred.extend(comp[pos:])
                    break
                piece.append(i)
                n_ads += extra
                camps += extra_camps
            ads = n_ads
        placed = False
        for slot in list(open_chunks):
            used, used_ads, used_camps = loads[slot]
            if used + len(piece) <= size and used_ads + ads <= ads_cap and campaigns_fit(used_camps, camps):
                chunks[slot].extend(piece)
                loads[slot] = (used + len(piece), used_ads + ads, used_camps + camps)
                placed = True
                if loads[slot][0] >= size:
                    open_chunks.remove(slot)
                break
        if not placed:
            chunks.append(list(piece))
            loads.append((len(piece), ads, camps))
            if len(piece) < size:
                open_chunks.append(len(chunks) - 1)
    return [sorted(c) for c in chunks], sorted(deferred)


# --------------------------------------------------------------------------------------------------
# Result entries
# --------------------------------------------------------------------------------------------------


def error_entry(
    code: int, message: str, type_: str, graph_code: int | None = None, **extra: Any
) -> dict[str, Any]:
    """A synthetic per-entry error shaped like Graph's (``body.error`` envelope)."""
    error: dict[str, Any] = {"message": message, "type": type_, "code": graph_code}
    error.update(extra)
    return {"code": code, "headers": {}, "body": {"error": error}}


def entry_failed(result: Mapping[str, Any] | None) -> bool:
    """True when a result entry is an error (code 0 or >= 400)."""
    if result is None:
        return True
    code = result.get("code")
    return not isinstance(code, int) or code == 0 or code >= 400


def _headers_to_dict(raw: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    if isinstance(raw, Mapping):
        return {str(k): str(v) for k, v in raw.items()}
    if isinstance(raw, list):
        for item in raw:
            if isinstance(item, Mapping) and "name" in item:
                value = item.get("value")
                out[str(item["name"])] = value if isinstance(value, str) else json.dumps(value)
            elif isinstance(item, str) and ":" in item:
                key, _, value = item.partition(":")
                out[key.strip()] = value.strip()
    return out


def _parse_body(raw: Any) -> Any:
    if isinstance(raw, str):
        if not raw.strip():
            return None
        try:
            return json.loads(raw)
        except ValueError:
            return raw
    return raw


def _graph_error(body: Any) -> Mapping[str, Any] | None:
    if isinstance(body, Mapping) and isinstance(body.get("error"), Mapping):
        return body["error"]
    return None


def _is_retryable_entry(code: int, body: Any) -> bool:
    if code >= 500:
        return True
    err = _graph_error(body)
    if err is None:
        return False
    if err.get("is_transient") is True:
        return True
    graph_code = err.get("code")
    return isinstance(graph_code, int) and (graph_code in TRANSIENT_CODES or graph_code in THROTTLE_CODES)


# Outcome kinds of one entry after one call.
DONE = "done"  # final: Graph's answer (success or non-retryable error) or a synthetic final error
RETRY = "retry"  # not done (null) or retryable error: send again, counts an attempt
REQUEUE = "requeue"  # not sent / result dropped because a dependency in its call was not done


@dataclass
class _Outcome:
    kind: str
    result: dict[str, Any] | None = None


class _ResolveError(Exception):
    pass


# --------------------------------------------------------------------------------------------------
# The engine
# --------------------------------------------------------------------------------------------------


@dataclass
class _RunState:
    results: list[dict[str, Any] | None]
    done: list[bool]
    attempts: list[int]
    last_retry: list[dict[str, Any] | None]
    chunks_done: int = 0
    chunks_total: int = 0
    errors: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class BatchRunner:
    """Runs one validated batch through a hook. Use :func:`run_batch`."""

    def __init__(
        self,
        hook: GraphHook,
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
    ) -> None:
        self.hook = hook
        self.entries = entries
        self.files = files
        self.include_headers = include_headers
        self.max_concurrency = max(1, int(max_concurrency))
        self.max_rounds = max(1, int(max_rounds))
        self.max_ads_per_chunk = max(1, int(max_ads_per_chunk))
        self.max_adsets_per_campaign_per_chunk = (
            None
            if max_adsets_per_campaign_per_chunk is None
            else max(1, int(max_adsets_per_campaign_per_chunk))
        )
        self.chunk_size = max(1, min(int(chunk_size), MAX_BATCH_SIZE))
        self.progress = progress
        throttle = getattr(hook, "throttle", None)
        if round_backoff is None:
            round_backoff = float(getattr(throttle, "backoff_base", 1.0))
        self.round_backoff = max(0.0, round_backoff)
        self.round_backoff_max = round_backoff_max
        n = len(entries)
        self.state = _RunState([None] * n, [False] * n, [0] * n, [None] * n)
        self._names = {e.name: e.index for e in entries if e.name}

    # ---- small helpers -------------------------------------------------------------------------

    def _scrub(self, text: str) -> str:
        scrub = getattr(self.hook, "scrub", None)
        return scrub(text) if callable(scrub) else text

    def _succeeded(self, index: int, local: Mapping[int, _Outcome] | None = None) -> dict[str, Any] | None:
        """The successful result of a finished entry (this run's state or this call's outcomes)."""
        if local is not None and index in local:
            out = local[index]
            return out.result if out.kind == DONE and not entry_failed(out.result) else None
        if self.state.done[index] and not entry_failed(self.state.results[index]):
            return self.state.results[index]
        return None

    def _wire_entry(
        self, entry: BatchEntry, in_call: set[int], local: Mapping[int, _Outcome]
    ) -> dict[str, Any]:
        """The JSON object sent for ``entry``; references outside the call resolved client-side."""
        url, body = entry.relative_url, entry.body
        for ref in entry.references:
            target = self._index_of(ref.name)
            if target in in_call:
                continue
            result = self._succeeded(target, local)
            if result is None:
                raise _ResolveError(f"dependency {ref.name!r} (#{target}) did not succeed")
            value = jsonpath.resolve(result.get("body"), ref.path)
            if value is None:
                raise _ResolveError(f"reference {ref.token} matched nothing in the result of {ref.name!r}")
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
        in_call_deps = [d for d in entry.depends_on if self._index_of(d) in in_call]
        for d in entry.depends_on:
            if self._index_of(d) not in in_call and self._succeeded(self._index_of(d), local) is None:
                raise _ResolveError(f"depends_on {d!r} did not succeed")
        if in_call_deps:
            # Graph takes one name; the latest in-call dependency runs after the others anyway.
            wire["depends_on"] = max(in_call_deps, key=self._index_of)
        if entry.attached_files:
            wire["attached_files"] = ",".join(entry.attached_files)
        if entry.headers:
            wire["headers"] = list(entry.headers)
        return wire

    def _index_of(self, name: str) -> int:
        return self._names[name]

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

    def _etag_cache(self, entry: BatchEntry) -> tuple[Any, Any] | None:
        """The hook's ETag cache and this entry's key in it (``hook.core.etags``), when available."""
        core = getattr(self.hook, "core", None)
        cache = getattr(core, "etags", None)
        config = getattr(core, "config", None)
        if cache is None or config is None or entry.method != "GET":
            return None
        try:
            from airflow_fb_async.hooks._core import EtagCache, split_path

            path, params = split_path(entry.relative_url)
            url = f"{config.host}/{path}" if _VERSION_RE.match(path) else f"{config.base_url}/{path}"
            return cache, EtagCache.key("GET", url, params)
        except Exception:  # the cache is an optimisation: never fail the batch over it
            return None

    def _sent_etag(self, entry: BatchEntry) -> str | None:
        for header in entry.headers:
            key, _, value = header.partition(":")
            if key.strip().lower() == "if-none-match":
                return value.strip()
        return None

    def _observe(self, entry: BatchEntry, headers: Mapping[str, str], seen: set[tuple[Any, ...]]) -> None:
        """Feed an entry's usage headers to the throttle (once per distinct reading in a call)."""
        throttle = getattr(self.hook, "throttle", None)
        if throttle is None:
            return
        accounts = jsonpath_accounts(entry)
        account = accounts[0] if accounts else None
        usage = tuple(v for k, v in headers.items() if k.lower() in _USAGE_HEADERS)
        if not usage:
            return
        key = (account, *usage)
        if key in seen:
            return
        seen.add(key)
        throttle.observe(headers, account_id=account)

    def _to_result(
        self, entry: BatchEntry, raw: Mapping[str, Any], seen: set[tuple[Any, ...]]
    ) -> tuple[dict[str, Any], bool]:
        code = raw.get("code")
        code = int(code) if isinstance(code, int | float | str) and str(code).isdigit() else 0
        headers = _headers_to_dict(raw.get("headers"))
        if headers:
            self._observe(entry, headers, seen)
        raw_body = raw.get("body")
        if isinstance(raw_body, str):
            # Graph writes the batch's token into ``paging.next`` / ``previous`` of paged entries:
            # results go to XCom and logs, so no credential may survive in them.
            raw_body = self._scrub(raw_body)
        body = clean_paging(_parse_body(raw_body))
        if entry.method == "GET" and code in (200, 304):
            found = self._etag_cache(entry)
            if found is not None:
                cache, key = found
                if code == 304 and body is None:
                    cached = cache.get(key)
                    if cached is not None and cached[0] == self._sent_etag(entry):
                        body = cached[1]
                elif code == 200 and body is not None:
                    etag = next((v for k, v in headers.items() if k.lower() == "etag"), None)
                    if etag:
                        cache.put(key, etag, body)
        result = {"code": code, "headers": headers, "body": body}
        return result, _is_retryable_entry(code, body)

    # ---- one call ------------------------------------------------------------------------------

    def _send(self, ids: list[int], outcomes: dict[int, _Outcome]) -> int:
        """Send ``ids`` (sorted) in one call (halving on code 1/960). Returns the number of calls."""
        in_call: set[int] = set()
        wire: list[dict[str, Any]] = []
        sent: list[int] = []
        for i in ids:
            entry = self.entries[i]
            blocked = [d for d in entry.deps if d in set(ids) and d not in in_call]
            if blocked:
                # A dependency in this call was not sent (unresolvable): neither is this one.
                dep_out = outcomes.get(blocked[0])
                outcomes[i] = (
                    _Outcome(REQUEUE)
                    if dep_out is None or dep_out.kind != DONE
                    else _Outcome(DONE, self._dep_failed(entry, blocked[0]))
                )
                continue
            try:
                wire.append(self._wire_entry(entry, in_call | set(ids), outcomes))
            except _ResolveError as exc:
                outcomes[i] = _Outcome(DONE, error_entry(424, self._scrub(str(exc)), "BatchDependencyFailed"))
                continue
            in_call.add(i)
            sent.append(i)
        if not sent:
            return 0
        only_gets = all(self.entries[i].method == "GET" for i in sent)
        data = {"batch": json.dumps(wire, separators=(",", ":")), "include_headers": "true"}
        try:
            response = self.hook.request(
                "POST",
                "",
                data=data,
                files=self._file_parts(sent),
                idempotent=only_gets,
                raise_codes=SHRINK_CODES,
            )
        except GraphAmbiguousError:
            for i in sent:
                outcomes[i] = self._unknown_outcome(i, "the connection dropped after the batch call was sent")
            return 1
        except GraphAPIError as exc:
            if exc.code in SHRINK_CODES and len(sent) > 1:
                half = (len(sent) + 1) // 2
                log.info(
                    "batch: call of %d entries failed with code %s, retrying in halves of %d",
                    len(sent),
                    exc.code,
                    half,
                )
                calls = 1 + self._send(sent[:half], outcomes)
                rest = []
                for i in sent[half:]:
                    bad = [d for d in self.entries[i].deps if d in outcomes and d not in rest]
                    if any(outcomes[d].kind != DONE for d in bad):
                        outcomes[i] = _Outcome(REQUEUE)
                    else:
                        rest.append(i)
                return calls + self._send(rest, outcomes)
            if isinstance(exc, GraphAuthError) or exc.code in AUTH_CODES:
                raise
            err = exc.to_dict()
            err["message"] = self._scrub(str(err.get("message") or ""))
            for i in sent:
                outcomes[i] = _Outcome(
                    DONE, {"code": exc.status_code or 500, "headers": {}, "body": {"error": err}}
                )
            return 1
        entries_raw = response if isinstance(response, list) else []
        not_done: set[int] = set()
        seen_usage: set[tuple[Any, ...]] = set()
        for pos, i in enumerate(sent):
            entry = self.entries[i]
            if pos >= len(entries_raw) or not (
                entries_raw[pos] is None or isinstance(entries_raw[pos], Mapping)
            ):
                # Graph's answer has no usable entry here (not a list, too short, not an object):
                # unlike a documented ``null``, nothing says this entry did not run.
                outcomes[i] = self._unknown_outcome(i, "Graph's batch answer had no entry for it")
                if outcomes[i].kind == RETRY:
                    not_done.add(i)
                continue
            raw = entries_raw[pos]
            if raw is None:  # did not complete in time (named entries never have omitted responses)
                outcomes[i] = _Outcome(RETRY, None)
                not_done.add(i)
                continue
            result, retryable = self._to_result(entry, raw, seen_usage)
            upstream_missing = any(d in not_done for d in entry.deps)
            if upstream_missing and entry_failed(result):
                outcomes[i] = _Outcome(REQUEUE)
                not_done.add(i)
            elif retryable:
                outcomes[i] = _Outcome(RETRY, result)
                not_done.add(i)
            else:
                outcomes[i] = _Outcome(DONE, result)
        return 1

    def _unknown_outcome(self, i: int, why: str) -> _Outcome:
        """An entry whose fate is unknown: a GET is simply read again; a write may have taken
        effect, so it is reported (code 504, ``BatchEntryAmbiguous``) and never resent."""
        method = self.entries[i].method
        if method == "GET":
            return _Outcome(RETRY, None)
        return _Outcome(
            DONE,
            error_entry(
                504,
                f"{why}: this {method} may or may not have taken effect, so it was not resent; "
                "check before retrying",
                "BatchEntryAmbiguous",
            ),
        )

    def _dep_failed(self, entry: BatchEntry, dep: int) -> dict[str, Any]:
        dep_entry = self.entries[dep]
        return error_entry(
            424,
            f"not sent: its dependency {dep_entry.label} failed",
            "BatchDependencyFailed",
        )

    def _run_chunk(self, ids: list[int]) -> dict[int, _Outcome]:
        outcomes: dict[int, _Outcome] = {}
        self._send(ids, outcomes)
        for i in ids:
            outcomes.setdefault(i, _Outcome(REQUEUE))
        return outcomes

    # ---- rounds --------------------------------------------------------------------------------

    def _ready(self) -> list[int]:
        """Pending entries whose dependencies are done or ready; dependents of failures finish."""
        st = self.state
        ready: set[int] = set()
        for e in self.entries:
            i = e.index
            if st.done[i]:
                continue
            failed = next((d for d in e.deps if st.done[d] and entry_failed(st.results[d])), None)
            if failed is not None:
                self._finish(i, self._dep_failed(e, failed))
                continue
            if all(st.done[d] or d in ready for d in e.deps):
                ready.add(i)
        return sorted(ready)

    def _finish(self, index: int, result: dict[str, Any]) -> None:
        st = self.state
        st.results[index] = result
        st.done[index] = True
        if entry_failed(result):
            st.errors += 1

    def _merge(self, outcomes: Mapping[int, _Outcome]) -> bool:
        """Apply one call's outcomes; True when something has to be retried."""
        st = self.state
        retry = False
        for i, out in outcomes.items():
            if out.kind == DONE and out.result is not None:
                self._finish(i, out.result)
            elif out.kind == RETRY:
                retry = True
                st.attempts[i] += 1
                st.last_retry[i] = out.result
                if st.attempts[i] >= self.max_rounds:
                    self._finish(i, out.result or self._incomplete(i))
            else:
                retry = True
        return retry

    def _incomplete(self, index: int) -> dict[str, Any]:
        return error_entry(
            503,
            f"batch entry did not complete after {self.state.attempts[index]} attempts",
            "BatchEntryIncomplete",
            2,
            is_transient=True,
        )

    def _report(self) -> None:
        st = self.state
        done = sum(st.done)
        log.info(
            "batch: chunk %d/%d done, %d/%d entries, %d errors so far",
            st.chunks_done,
            max(st.chunks_total, st.chunks_done),
            done,
            len(self.entries),
            st.errors,
        )
        if self.progress is not None:
            self.progress(done, len(self.entries), st.errors)

    def run(self) -> list[dict[str, Any]]:
        st = self.state
        retry_rounds = 0
        pool = ThreadPoolExecutor(max_workers=self.max_concurrency, thread_name_prefix="graph-batch")
        try:
            while not all(st.done):
                ready = self._ready()
                if not ready:
                    if all(st.done):
                        break
                    raise RuntimeError("batch: no entry is ready but some are pending (dependency bug)")
                chunks, _deferred = plan_chunks(
                    self.entries,
                    ready,
                    chunk_size=self.chunk_size,
                    max_ads_per_chunk=self.max_ads_per_chunk,
                    max_adsets_per_campaign_per_chunk=self.max_adsets_per_campaign_per_chunk,
                )
                planned = sum(len(c) for c in chunks)
                st.chunks_total = st.chunks_done + len(chunks)
                not_planned = sum(1 for d in st.done if not d) - planned
                if not_planned > 0:
                    st.chunks_total += -(-not_planned // self.chunk_size)
                need_retry = False
                if len(chunks) == 1 or self.max_concurrency == 1:
                    for chunk in chunks:
                        need_retry |= self._merge(self._run_chunk(chunk))
                        st.chunks_done += 1
                        self._report()
                else:
                    futures: set[Future[dict[int, _Outcome]]] = {
                        pool.submit(self._run_chunk, chunk) for chunk in chunks
                    }
                    try:
                        while futures:
                            finished, futures = wait(futures, return_when=FIRST_COMPLETED)
                            for fut in finished:
                                need_retry |= self._merge(fut.result())
                                st.chunks_done += 1
                                self._report()
                    except BaseException:
                        for fut in futures:
                            fut.cancel()
                        raise
                if need_retry and not all(st.done):
                    delay = min(self.round_backoff_max, self.round_backoff * (2**retry_rounds))
                    retry_rounds += 1
                    if delay > 0:
                        log.info(
                            "batch: %d entries not done yet, next round in %.2fs", st.done.count(False), delay
                        )
                        time.sleep(delay)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        return [self._output(i) for i in range(len(self.entries))]

    def _output(self, index: int) -> dict[str, Any]:
        result = self.state.results[index]
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


def jsonpath_accounts(entry: BatchEntry) -> list[str]:
    """Ad account keys an entry touches (for ``X-Ad-Account-Usage``, which does not name it)."""
    found = re.findall(r"\bact_(\d+)", entry.relative_url)
    return list(dict.fromkeys(found))


def run_batch(
    hook: GraphHook,
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
) -> list[dict[str, Any]]:
    """Run a standard batch of any size; one result per request, in input order.

    :param hook: the :class:`GraphHook` whose ``request`` makes the calls.
    :param requests: list of dicts (``method``, ``relative_url``, optional ``body``, ``name``,
        ``depends_on``, ``omit_response_on_success``, ``attached_files``, ``headers``).
    :param include_headers: keep each entry's response headers in the results.
    :param files: multipart parts for ``attached_files``: part name -> path or bytes.
    :param max_concurrency: calls in flight at once.
    :param max_rounds: attempts per entry answered ``null`` (or with a transient error).
    :param max_ads_per_chunk: ad-creating POSTs (``.../ads``) per call (Marketing API guidance).
    :param max_adsets_per_campaign_per_chunk: ad-set-creating POSTs (``.../adsets``) naming the same
        ``campaign_id`` (an id, or the same reference text) per call; None for no limit.
    :param chunk_size: entries per call (at most 50).
    :param progress: ``progress(done, total, errors)`` after every call.
    :param round_backoff: base pause between retry rounds (default: the connection's backoff_base).
    :param round_backoff_max: cap of that pause.
    :param validated: what :func:`validate_requests` returned for these same ``requests`` and
        ``files`` (the operator validates before it builds the hook; this skips doing it twice).
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
    runner = BatchRunner(
        hook,
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
    )
    return runner.run()
