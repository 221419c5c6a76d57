"""Requests files (``requests_path``) for the file-fed operators: one validating pass, then windows.

:func:`scan_requests` reads the file once, line by line: it hashes its bytes (the run's state is
keyed by the file's content, not its name), cuts it into windows (:mod:`..hooks.request_windows`)
and validates every window with the operator's own validator, so bad input fails naming its line
before any HTTP call. It keeps only where each window starts (:class:`WindowSpan`), never the
requests. :func:`read_window` then reads one window again from its byte offset when it is sent.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import TYPE_CHECKING, Any, overload

from airflow_fb_async.exceptions import GraphInputError
from airflow_fb_async.hooks.ids import normalize_ad_account_id
from airflow_fb_async.hooks.request_set_plan import (
    MAX_SET_SIZE,
    RequestSetPart,
    RequestSetPlan,
    key_digest,
    part_names,
    validate_idempotency_key,
    validate_max_set_size,
    validate_notification_mode,
    validate_notification_uri,
    validate_set_name,
)
from airflow_fb_async.hooks.request_set_plan import validate_requests as validate_set_requests
from airflow_fb_async.hooks.request_windows import RefsOf, Window, plan_windows, reference_refs
from airflow_fb_async.jsonl import StoragePath, iter_lines

if TYPE_CHECKING:
    from collections.abc import Callable

WHAT = "requests_path"


@dataclass(frozen=True)
class WindowSpan:
    """Where a window starts in the file, and how many requests it holds."""

    number: int
    first_index: int
    first_line: int
    offset: int
    size: int


@dataclass(frozen=True)
class FileScan:
    """What one pass over a requests file found: its content hash, request count and windows."""

    path: StoragePath
    sha256: str
    count: int
    windows: list[WindowSpan]


def relocate(err: GraphInputError, window: Window) -> GraphInputError:
    """``err`` raised for ``window.requests`` (index within the window) named by file line and index."""
    if err.index is None or not 0 <= err.index < len(window.lines):
        return GraphInputError(f"{window.describe()}: {err.detail}", line=err.line)
    return GraphInputError(
        err.detail, index=window.first_index + err.index, name=err.name, line=window.lines[err.index]
    )


def scan_requests(
    path: StoragePath, size: int, refs_of: RefsOf, validate: Callable[[list[Any]], Any]
) -> FileScan:
    """One pass: hash, count, cut into windows of at most ``size`` and validate each window.

    :raises GraphInputError: naming the line of the first bad request (or bad JSON).
    """
    digest = hashlib.sha256()
    spans: list[WindowSpan] = []
    count = 0
    for window in plan_windows(iter_lines(path, WHAT, digest=digest), size, refs_of):
        try:
            validate(window.requests)
        except GraphInputError as err:
            raise relocate(err, window) from None
        spans.append(
            WindowSpan(window.number, window.first_index, window.lines[0], window.offsets[0], len(window))
        )
        count += len(window)
    return FileScan(path, digest.hexdigest(), count, spans)


def read_window(scan: FileScan, span: WindowSpan) -> Window:
    """The requests of one window, read again from its offset."""
    window = Window(span.number, span.first_index)
    for line, offset, request in islice(iter_lines(scan.path, WHAT, span.offset, span.first_line), span.size):
        window.lines.append(line)
        window.offsets.append(offset)
        window.requests.append(request)
    if len(window) != span.size:
        raise GraphInputError(
            f"{WHAT} {scan.path} changed while the task was reading it ({span.size} requests expected in window {span.number + 1}, found {len(window)})"
        )
    return window


def exactly_one(requests: Any, requests_path: Any, operator: str) -> None:
    """Exactly one of ``requests`` and ``requests_path`` (checked when the DAG is parsed)."""
    if (requests is None) == (requests_path is None):
        raise GraphInputError(f"{operator}: give exactly one of requests and requests_path")


def unique_names(validate: Callable[[list[Any]], Any]) -> Callable[[list[Any]], Any]:
    """``validate`` plus: request names unique across the whole file (an 8-byte digest kept per name)."""
    seen: set[bytes] = set()

    def check(requests: list[Any]) -> Any:
        result = validate(requests)
        for index, request in enumerate(requests):
            name = request.get("name") if isinstance(request, Mapping) else None
            if isinstance(name, str):
                key = hashlib.blake2b(name.encode("utf-8"), digest_size=8).digest()
                if key in seen:
                    raise GraphInputError(
                        "duplicate name (used on an earlier line): names must be unique across the file",
                        index=index,
                        name=name,
                    )
                seen.add(key)
        return result

    return check


class FileParts(Sequence[RequestSetPart]):
    """The request set parts of a requests file, one per window, each read when asked.

    Only the last part read is kept, so iterating holds one set (at most 1000 requests) in memory.
    """

    def __init__(self, scan: FileScan, names: Sequence[str]) -> None:
        self.scan = scan
        self.names = list(names)
        self._last: RequestSetPart | None = None

    def __len__(self) -> int:
        return len(self.scan.windows)

    @overload
    def __getitem__(self, index: int) -> RequestSetPart: ...

    @overload
    def __getitem__(self, index: slice) -> list[RequestSetPart]: ...

    def __getitem__(self, index: int | slice) -> RequestSetPart | list[RequestSetPart]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        span = self.scan.windows[index]  # IndexError ends iteration
        if self._last is not None and self._last.number == span.number + 1:
            return self._last
        window = read_window(self.scan, span)
        try:
            entries, _ = validate_set_requests(window.requests)
        except GraphInputError as err:
            raise relocate(err, window) from None
        self._last = RequestSetPart(
            name=self.names[span.number],
            entries=entries,
            indexes=list(range(span.first_index, span.first_index + span.size)),
            number=span.number + 1,
        )
        return self._last

    def __iter__(self) -> Iterator[RequestSetPart]:
        for number in range(len(self)):
            yield self[number]


def scan_set_file(path: StoragePath, max_set_size: int) -> FileScan:
    """Pass one over an async requests file: windows are the request sets (references stay inside)."""
    return scan_requests(path, max_set_size, reference_refs, unique_names(validate_set_requests))


def file_request_set_plan(
    path: StoragePath,
    ad_account_id: Any,
    name: Any,
    *,
    notification_uri: Any = None,
    notification_mode: Any = None,
    max_set_size: Any = MAX_SET_SIZE,
    idempotency_key: Any = None,
) -> tuple[RequestSetPlan, FileScan]:
    """:func:`~..hooks.request_set_plan.plan_request_sets` for a requests file: the same checks
    and names, with parts read from the file when each set is created."""
    account = normalize_ad_account_id(ad_account_id)
    validate_set_name(name)
    uri = validate_notification_uri(notification_uri)
    mode = validate_notification_mode(notification_mode)
    size = validate_max_set_size(max_set_size)
    key = validate_idempotency_key(idempotency_key)
    scan = scan_set_file(path, size)
    digest = key_digest(account, key) if key is not None else None
    names = part_names(name, len(scan.windows), digest) if scan.windows else []
    for part_name in names:
        validate_set_name(part_name, what="name (with its part suffix)")
    return RequestSetPlan(account, FileParts(scan, names), uri, mode, digest), scan
