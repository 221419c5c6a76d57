"""Client-side JSONPath subset for standard-batch references ``{result=NAME:$.path}``.

Graph resolves ``{result=NAME:$.path}`` server-side, but only inside one HTTP call. When a dependency
chain is longer than a batch call (50 entries), the batch engine resolves references to entries of
earlier calls itself, from their results, with this module.

Supported syntax (what Graph's docs and peers use):

- ``$`` the whole document;
- ``.name`` / ``['name']`` / ``["name"]`` a member of an object;
- ``.N`` / ``[N]`` an element of a list (or the member named ``"N"`` of an object);
- ``.*`` / ``[*]`` every member of an object (in order) or every element of a list.

Examples: ``$.id``, ``$.data.0.id``, ``$.data[0].id``, ``$.data.*.id``, ``$.images.*.hash``.

Like Graph, several matches are joined with commas (:func:`resolve`). Written from scratch for the
client; it shares no code with the emulator on purpose (two independent readings of the syntax).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["JSONPath", "JSONPathError", "compile_path", "find", "resolve", "to_text"]


class JSONPathError(ValueError):
    """The path is not valid in the supported subset."""


# A step is ("key", str), ("index", int) or ("wild", None).
_Step = tuple[str, Any]

_NAME_RE = re.compile(r"[A-Za-z0-9_\-]+")
_BRACKET_RE = re.compile(r"""\[\s*(?:(\*)|(-?\d+)|'([^']*)'|"([^"]*)")\s*\]""")


@dataclass(frozen=True)
class JSONPath:
    """A compiled path: its source text and its steps."""

    text: str
    steps: tuple[_Step, ...]

    def find(self, document: Any) -> list[Any]:
        """Every value the path selects in ``document``, in document order."""
        return list(_walk(document, self.steps))


@lru_cache(maxsize=1024)
def compile_path(text: str) -> JSONPath:
    """Parse ``text``; raise :class:`JSONPathError` (naming the position) when it is not valid."""
    if not isinstance(text, str):
        raise JSONPathError(f"JSONPath must be a string, got {type(text).__name__}")
    source = text.strip()
    if not source.startswith("$"):
        raise JSONPathError(f"JSONPath {text!r} must start with '$'")
    steps: list[_Step] = []
    pos = 1
    while pos < len(source):
        char = source[pos]
        if char == ".":
            pos += 1
            if pos < len(source) and source[pos] == "*":
                steps.append(("wild", None))
                pos += 1
                continue
            match = _NAME_RE.match(source, pos)
            if not match:
                raise JSONPathError(f"JSONPath {text!r}: expected a name, a number or '*' at position {pos}")
            token = match.group(0)
            steps.append(("index", int(token)) if token.isdigit() else ("key", token))
            pos = match.end()
        elif char == "[":
            match = _BRACKET_RE.match(source, pos)
            if not match:
                raise JSONPathError(f"JSONPath {text!r}: bad bracket selector at position {pos}")
            star, number, single, double = match.groups()
            if star:
                steps.append(("wild", None))
            elif number is not None:
                steps.append(("index", int(number)))
            else:
                steps.append(("key", single if single is not None else double))
            pos = match.end()
        else:
            raise JSONPathError(f"JSONPath {text!r}: unexpected {char!r} at position {pos}")
    return JSONPath(text, tuple(steps))


def _walk(node: Any, steps: tuple[_Step, ...]) -> Iterator[Any]:
    if not steps:
        yield node
        return
    kind, arg = steps[0]
    rest = steps[1:]
    if kind == "wild":
        if isinstance(node, dict):
            for value in node.values():
                yield from _walk(value, rest)
        elif isinstance(node, list):
            for value in node:
                yield from _walk(value, rest)
    elif kind == "index":
        if isinstance(node, list):
            if -len(node) <= arg < len(node):
                yield from _walk(node[arg], rest)
        elif isinstance(node, dict) and str(arg) in node:
            yield from _walk(node[str(arg)], rest)
    else:  # key
        if isinstance(node, dict) and arg in node:
            yield from _walk(node[arg], rest)


def find(document: Any, path: str) -> list[Any]:
    """Every value ``path`` selects in ``document`` (empty list when nothing matches)."""
    return compile_path(path).find(document)


def to_text(value: Any) -> str:
    """How one matched value is written into a URL or body: strings as is, the rest as JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, separators=(",", ":"))


def resolve(document: Any, path: str) -> str | None:
    """The text that replaces a reference: matches joined by commas, or None when nothing matches."""
    matches = find(document, path)
    if not matches:
        return None
    return ",".join(to_text(m) for m in matches)
