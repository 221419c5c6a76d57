"""The file-fed standard batch behind ``GraphBatchOperator(requests_path=..., output_path=...)``.

Flow of one try::

    scan the file (hash, windows, validation; no HTTP) -> progress head from the task state store
      -> for each window not done: read it again -> hook.batch(window, journal=window journal)
           -> its results to a part file -> head: window done (+ failures so far)
      -> parts concatenated into output_path (atomic) -> {"path", "count", "failed"}

**Where settled results live.** Not in the task state store: a 100,000-line file would not fit
there. Each finished window's results are written to a part file next to the output
(``.<output name>.parts-<sha256[:16]>/000000.jsonl``, any ``ObjectStoragePath`` filesystem), and
the store holds only a small head (``fb_batch_file``: file hash, windows done, failed count, the
first failures) plus the journal of the window in progress (``fb_batch_file.window``: the
engine's per-entry state for at most one window, see :mod:`.task_state`). A later try of the same
task instance with the same file *content* (sha256, whatever its name) skips the windows done,
resumes the window in progress exactly as a list batch resumes, and writes the rest; a file whose
content changed starts afresh (logged). Once the output is written the parts are deleted and the
head is kept: clearing the task returns the same summary without sending anything while the
output file exists.

Limits: the part files must survive between tries (a local path on one worker, or shared storage);
if they are gone, the task fails rather than send the windows again. Without a task state store
(Airflow before 3.3) a retry starts from the first window. ``fail_on_error`` lists the first
``MAX_LISTED_FAILURES`` failing lines; the failed count is exact.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_fb_async.exceptions import GraphBatchError
from airflow_fb_async.hooks.batch_validate import validate_requests
from airflow_fb_async.hooks.request_windows import batch_refs
from airflow_fb_async.jsonl import JsonlWriter, StoragePath
from airflow_fb_async.operators._files import FileScan, read_window, scan_requests
from airflow_fb_async.operators.task_state import BatchJournalError, InfoLogger, TaskStateJournal

if TYPE_CHECKING:
    from airflow_fb_async.hooks.graph import GraphHook
    from airflow_fb_async.hooks.request_windows import Window

HEAD_KEY = "fb_batch_file"
WINDOW_KEY = "fb_batch_file.window"
HEAD_VERSION = 1
#: Failures kept in the head (and listed by the task's error); the count is always exact.
MAX_KEPT_FAILURES = 20


def scan_batch_file(path: StoragePath, window_size: int, files: Any) -> FileScan:
    """Pass one over a standard batch requests file: every window validated like a request list."""
    return scan_requests(path, window_size, batch_refs, lambda requests: validate_requests(requests, files))


class FileProgress:
    """The small head in the task state store: which windows of which file are done."""

    def __init__(self, store: Any, scan: FileScan, output: StoragePath, window_size: int, log: InfoLogger):
        self.store = store
        self.identity = {"sha256": scan.sha256, "window_size": window_size, "output": str(output)}
        self.windows = 0
        self.failed = 0
        self.failures: list[dict[str, Any]] = []
        self.complete = False
        head = store.get(HEAD_KEY) if store is not None else None
        if (
            isinstance(head, Mapping)
            and head.get("v") == HEAD_VERSION
            and all(head.get(k) == v for k, v in self.identity.items())
        ):
            self.windows = int(head.get("windows") or 0)
            self.failed = int(head.get("failed") or 0)
            self.failures = list(head.get("failures") or [])
            self.complete = bool(head.get("complete"))
            log.info(
                "Found the progress of an earlier try on this file (sha256 %s): %d of %d window(s) done%s",
                scan.sha256[:16],
                self.windows,
                len(scan.windows),
                ", output written" if self.complete else "",
            )
        elif head is not None:
            log.info(
                "The requests file's content (or window_size, output_path) differs from an earlier try of "
                "this task: starting afresh (what the earlier try sent may be sent again)."
            )
            store.delete(HEAD_KEY)
            TaskStateJournal(store, [], key=WINDOW_KEY).clear()

    def save(self) -> None:
        """Record the windows done and the failures so far, so a retry starts after them."""
        if self.store is None:
            return
        head = {"v": HEAD_VERSION, **self.identity, "windows": self.windows, "failed": self.failed}
        self.store.set(HEAD_KEY, {**head, "failures": self.failures, "complete": self.complete})


def _parts_dir(output: StoragePath, scan: FileScan) -> StoragePath:
    return output.with_name(f".{output.name}.parts-{scan.sha256[:16]}")


def _part(parts: StoragePath, number: int) -> StoragePath:
    return parts / f"{number:06d}.jsonl"


def _remove_tree(path: StoragePath) -> None:
    try:
        if isinstance(path, Path):
            shutil.rmtree(path, ignore_errors=True)
        elif path.exists():
            path.fs.rm(path.path, recursive=True)
    except Exception:  # leftover parts are harmless; never fail a finished run over them
        pass


#: ``batch_failures(requests, results)`` of :mod:`.batch` (passed in: that module imports this one).
FailuresOf = Callable[[Sequence[Mapping[str, Any]], Sequence[Mapping[str, Any] | None]], list[dict[str, Any]]]


def window_failures(window: Window, failures: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Failures of one window (indexes within it) named by file index and line."""
    return [
        {**f, "index": window.first_index + f["index"], "line": window.lines[f["index"]]} for f in failures
    ]


def run_file_batch(
    *,
    scan: FileScan,
    output: StoragePath,
    hook: GraphHook,
    store: Any,
    window_size: int,
    log: InfoLogger,
    batch_failures: FailuresOf,
    run_options: dict[str, Any],
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Send every window not done, write ``output``; return the summary and the kept failures.

    :raises GraphBatchError: a window could not go on (``cause``; what ran is kept for the retry).
    """
    progress = FileProgress(store, scan, output, window_size, log)
    summary = {"path": str(output), "count": scan.count, "failed": progress.failed}
    if progress.complete and output.exists():
        log.info("The output %s of an earlier try is complete: nothing to send", output)
        return summary, progress.failures
    parts = _parts_dir(output, scan)
    missing = [n for n in range(progress.windows) if not _part(parts, n).exists()]
    if missing:
        raise BatchJournalError(
            f"An earlier try of this task finished {progress.windows} window(s) of the file, but the results "
            f"of {len(missing)} of them are missing from {parts}. Rather than send those requests again the "
            f"task stops: check the objects on the account, then delete the task state key {HEAD_KEY!r} to "
            "start afresh."
        )
    for span in scan.windows[progress.windows :]:
        window = read_window(scan, span)
        journal = None
        if store is not None:
            marker = {"file": scan.sha256, "window": span.number, "first_line": span.first_line}
            journal = TaskStateJournal(store, [marker, *window.requests], key=WINDOW_KEY, logger=log)
        log.info(
            "Window %d/%d: %d request(s), %s",
            span.number + 1,
            len(scan.windows),
            len(window),
            window.describe(),
        )
        try:
            results = hook.batch(window.requests, journal=journal, **run_options)
        except GraphBatchError as err:
            done = sum(w.size for w in scan.windows[: span.number])
            settled = sum(r is not None for r in (err.results or []))
            raise GraphBatchError(
                hook.scrub(
                    f"The batch stopped in {window.describe()}: {settled} of {len(window)} of its requests "
                    f"settled; the {done} request(s) of the windows before are saved. "
                    f"{err.cause if err.cause is not None else err}. "
                    + (
                        "A retry of this task resumes this window and sends only what is not settled."
                        if store is not None
                        else "Without a task state store a retry sends the whole file again."
                    )
                ),
                cause=err.cause,
            ) from err
        found = window_failures(window, batch_failures(window.requests, results))
        with JsonlWriter(_part(parts, span.number), hook.scrub) as writer:
            for result in results:
                writer.write(result)
        progress.windows = span.number + 1
        progress.failed += len(found)
        progress.failures = (progress.failures + found)[:MAX_KEPT_FAILURES]
        progress.save()
        if journal is not None:
            journal.clear()
    with JsonlWriter(output, hook.scrub) as writer:
        for span in scan.windows:
            writer.write_raw_lines(_part(parts, span.number))
    progress.complete = True
    progress.save()
    _remove_tree(parts)
    summary["failed"] = progress.failed
    log.info("Wrote %d result line(s) to %s, %d failed", writer.count, output, progress.failed)
    return summary, progress.failures
