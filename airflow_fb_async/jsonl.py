"""JSON Lines files on a local path or any Airflow ``ObjectStoragePath``: the one home for reading
request files line by line and writing result files atomically.

- :func:`storage_path` turns a rendered template value (str, ``os.PathLike``, ``ObjectStoragePath``,
  ``file://`` / ``s3://`` URL) into a path, or raises :class:`GraphInputError` naming the parameter.
- :func:`iter_lines` streams ``(line number, byte offset, value)``: one line in memory at a time;
  blank lines are skipped, a line that is not JSON fails naming its number.
- :class:`JsonlWriter` writes under a temporary sibling name and renames at the end, so a failed task
  never leaves a half-written file; lines are scrubbed (the connection's secrets) in chunks.

Used by ``AsyncRequestResultsOperator`` (results files) and the file-fed ``GraphBatchOperator`` /
``SubmitAsyncBatchOperator``.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, cast

from airflow_fb_async._compat import ObjectStoragePath, get_hook_lineage_collector
from airflow_fb_async.exceptions import GraphInputError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from types import TracebackType

#: Lines buffered (then scrubbed and written at once) when writing JSON Lines.
WRITE_CHUNK_LINES = 500
_LOCAL_PROTOCOLS = frozenset({"", "file", "local"})

StoragePath = Path | ObjectStoragePath


def storage_path(value: Any, what: str) -> StoragePath:
    """A local ``Path`` (absolute) or an ``ObjectStoragePath`` for a rendered path parameter."""
    if isinstance(value, ObjectStoragePath):
        return value
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str) or not value.strip():
        raise GraphInputError(
            f"{what} must be a non-empty string, a path or an ObjectStoragePath, got {value!r}"
        )
    value = value.strip()
    if value.endswith(("/", os.sep)):
        raise GraphInputError(f"{what} must name a file, not a directory: {value!r}")
    if "://" in value:
        return ObjectStoragePath(value)
    return Path(value).expanduser().absolute()


def is_local(path: StoragePath) -> bool:
    """Whether the path is on this machine's file system (plain path or ``file://``)."""
    return isinstance(path, Path) or getattr(path, "protocol", "") in _LOCAL_PROTOCOLS


def open_binary(path: StoragePath, mode: str) -> IO[bytes]:
    """A plain buffered binary file for ``path`` (``"rb"`` or ``"wb"``).

    ``ObjectStoragePath.open`` wraps the file to report asset lineage on every call (about 30 % of
    the run time at 100,000 lines) and would report temporary names; the fsspec file underneath is
    opened directly and lineage is reported once, for the final path.
    """
    if isinstance(path, ObjectStoragePath):
        return cast("IO[bytes]", path.fs.open(path.path, mode=mode))
    return path.open(mode)


def iter_lines(
    path: StoragePath, what: str, offset: int = 0, first_line: int = 1, digest: Any = None
) -> Iterator[tuple[int, int, Any]]:
    """``(line number, byte offset of the line, parsed value)`` for each non-blank line.

    Starts at byte ``offset``, a line start found by an earlier pass, whose number is
    ``first_line``. ``digest`` (a ``hashlib`` object) takes every byte read, blank lines included.
    A line that is not JSON raises :class:`GraphInputError` naming the line.
    """
    try:
        fh = open_binary(path, "rb")
    except FileNotFoundError:
        raise GraphInputError(f"{what}: no such file: {path}") from None
    with fh:
        if offset:
            fh.seek(offset)
        position = offset
        for number, raw in enumerate(fh, start=first_line):
            start, position = position, position + len(raw)
            if digest is not None:
                digest.update(raw)
            if not raw.strip():
                continue
            try:
                value = json.loads(raw)
            except ValueError as err:
                raise GraphInputError(f"{what} {path}: not a JSON value ({err})", line=number) from None
            yield number, start, value


def remove_quietly(path: StoragePath) -> None:
    """Delete the file if it exists; errors are swallowed (cleanup must not hide the real error)."""
    try:
        if path.exists():
            path.unlink()
    except Exception:  # cleanup must never hide the original error
        pass


def record_output_lineage(path: StoragePath) -> None:
    """Report ``path`` as an output asset once (best effort) when it is an ``ObjectStoragePath``."""
    if not isinstance(path, ObjectStoragePath):
        return
    try:
        get_hook_lineage_collector().add_output_asset(context=path, uri=str(path))
    except Exception:  # lineage is best effort; never fail a finished write over it
        pass


class JsonlWriter:
    """Write JSON values as lines to ``output``, atomically: a temporary sibling renamed on success.

    Use as a context manager; on an exception the temporary file is removed and ``output`` is left
    as it was. ``scrub`` (the hook's) runs over each chunk of lines before it is written.
    """

    def __init__(self, output: StoragePath, scrub: Callable[[str], str] | None = None) -> None:
        self.output = output
        self.scrub = scrub or (lambda text: text)
        self.tmp: StoragePath = output.with_name(f".{output.name}.tmp-{uuid.uuid4().hex[:12]}")
        self.count = 0
        self._chunk: list[str] = []
        self._fh: IO[bytes] | None = None

    def __enter__(self) -> JsonlWriter:
        if is_local(self.output):
            self.tmp.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open_binary(self.tmp, "wb")
        return self

    def write(self, value: Any) -> None:
        """Add one value as one JSON line (buffered; flushed in chunks and on close)."""
        self._chunk.append(json.dumps(value, ensure_ascii=False, separators=(",", ":")))
        self.count += 1
        if len(self._chunk) >= WRITE_CHUNK_LINES:
            self._flush()

    def write_raw_lines(self, source: StoragePath) -> None:
        """Copy the lines of a JSON Lines file written earlier by a ``JsonlWriter`` (already scrubbed)."""
        self._flush()
        assert self._fh is not None
        with open_binary(source, "rb") as fh:
            for raw in fh:
                if raw.strip():
                    self._fh.write(raw if raw.endswith(b"\n") else raw + b"\n")
                    self.count += 1

    def _flush(self) -> None:
        if self._chunk:
            assert self._fh is not None
            self._fh.write((self.scrub("\n".join(self._chunk)) + "\n").encode("utf-8"))
            self._chunk.clear()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._fh is not None
        try:
            if kind is None:
                self._flush()
            self._fh.close()
            if kind is None:
                if isinstance(self.output, Path):
                    os.replace(cast("Path", self.tmp), self.output)  # atomic on one filesystem
                else:
                    cast("ObjectStoragePath", self.tmp).rename(self.output)
        except BaseException:
            remove_quietly(self.tmp)
            raise
        if kind is not None:
            remove_quietly(self.tmp)
        else:
            record_output_lineage(self.output)
