"""Cut a stream of requests (a JSON Lines file) into bounded windows without breaking references.

Pure: no HTTP, no files. The file-fed operators read a requests file line by line and hand the
lines to :func:`plan_windows`, which yields consecutive windows of at most ``size`` requests: a
standard batch runs one window at a time (``GraphBatchOperator(requests_path=...)``), an async
submission makes one request set of each (``SubmitAsyncBatchOperator(requests_path=...)``).

**How far back a reference may reach.** A reference (``{result=NAME:$.path}``, and for standard
batches ``depends_on``) resolves only inside its window. When a window is full and the next line
refers into it, the window is cut before the chain that line belongs to, and that chain moves on
whole into the next window. So a chain of lines linked by references always works when it spans
at most ``size`` requests (from its first line to its last, lines in between included); a line
that refers to a request of a window already closed, or a chain longer than ``size``, fails
naming the line, before anything is sent. Memory: one window of requests, plus the names of the
window before (for a clearer message).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from airflow_fb_async.exceptions import GraphInputError
from airflow_fb_async.hooks.references import reference_names

#: Names a request refers to (references and, for standard batches, ``depends_on``).
RefsOf = Callable[[Mapping[str, Any]], list[str]]


@dataclass
class Window:
    """Consecutive requests of a file: ``requests[i]`` sits on line ``lines[i]`` at byte ``offsets[i]``."""

    number: int
    first_index: int
    lines: list[int] = field(default_factory=list)
    offsets: list[int] = field(default_factory=list)
    requests: list[Any] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.requests)

    def describe(self) -> str:
        """``window 3 (lines 2001-3000)``, for error messages and logs."""
        return (
            f"window {self.number + 1} (lines {self.lines[0]}-{self.lines[-1]})" if self.lines else "window"
        )


def _body_text(body: Any) -> str | None:
    if body is None or isinstance(body, str):
        return body
    try:
        return json.dumps(body, default=str)
    except (TypeError, ValueError):
        return None


def reference_refs(request: Mapping[str, Any]) -> list[str]:
    """Names referenced by ``{result=NAME:...}`` in ``relative_url`` and ``body`` (async sets)."""
    url = request.get("relative_url")
    return reference_names(url if isinstance(url, str) else None, _body_text(request.get("body")))


def batch_refs(request: Mapping[str, Any]) -> list[str]:
    """References plus ``depends_on`` names (standard batches)."""
    names = reference_refs(request)
    depends = request.get("depends_on")
    items = [depends] if isinstance(depends, str) else depends if isinstance(depends, list) else []
    for item in items:
        for part in item.split(",") if isinstance(item, str) else []:
            if part.strip() and part.strip() not in names:
                names.append(part.strip())
    return names


def plan_windows(
    items: Iterable[tuple[int, int, Any]], size: int, refs_of: RefsOf = reference_refs
) -> Iterator[Window]:
    """Consecutive windows of at most ``size`` requests from ``(line, offset, request)`` items.

    Requests that are not dicts pass through (the caller's validation names them).
    :raises GraphInputError: a reference out of the window's reach, naming the line.
    """
    window = Window(0, 0)
    names: dict[str, int] = {}  # name -> index in the file, for the current window
    previous: dict[str, int] = {}  # name -> line, of the window closed last (for the message only)
    reach: list[int] = []  # per request of the window: the smallest index it refers to (or its own)
    index = -1
    for line, offset, request in items:
        index += 1
        refs = refs_of(request) if isinstance(request, Mapping) else []
        targets: list[int] = []
        for ref in refs:
            if ref in names:
                targets.append(names[ref])
                continue
            if ref in previous:
                where = f"on line {previous[ref]}, in the window before"
            else:
                where = "not an earlier request of this window (unknown, later, or further back)"
            raise GraphInputError(
                f"refers to {ref!r}, which is {where}: a reference reaches only requests of its own window "
                f"of at most {size} (a chain of referring lines must span at most {size} requests)",
                index=index,
                name=request.get("name") if isinstance(request.get("name"), str) else None,
                line=line,
            )
        if len(window) >= size:
            cut = window.first_index + len(window)
            if targets:
                cut = min(targets)
                while True:  # move back until no request after the cut refers before it
                    low = min(reach[cut - window.first_index :])
                    if low >= cut:
                        break
                    cut = low
                if cut == window.first_index:
                    raise GraphInputError(
                        f"its references tie it to a chain starting on line {window.lines[0]} that spans more "
                        f"than {size} requests: a reference reaches only requests of its own window of at "
                        f"most {size}",
                        index=index,
                        line=line,
                    )
            keep = cut - window.first_index
            done = Window(
                window.number,
                window.first_index,
                window.lines[:keep],
                window.offsets[:keep],
                window.requests[:keep],
            )
            previous = {n: done.lines[i - done.first_index] for n, i in names.items() if i < cut}
            names = {n: i for n, i in names.items() if i >= cut}
            window = Window(
                window.number + 1, cut, window.lines[keep:], window.offsets[keep:], window.requests[keep:]
            )
            reach = reach[keep:]
            yield done
        window.lines.append(line)
        window.offsets.append(offset)
        window.requests.append(request)
        reach.append(min(targets, default=index))
        name = request.get("name") if isinstance(request, Mapping) else None
        if isinstance(name, str):
            names[name] = index
    if window.requests:
        yield window
