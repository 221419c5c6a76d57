"""The emulator's own JSONPath subset and ``{result=NAME:$.path}`` reference substitution.

Supported paths: ``$``, ``$.a.b``, ``$.a.*.b``, ``$.data.0.id``, ``$.data[0].id``, ``$['a']``,
``$.images.*.hash``. Several matches are joined with commas, as Graph does.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["REF_RE", "RefError", "jsonpath", "referenced_names", "render", "substitute"]

REF_RE = re.compile(r"\{result=([^:{}]+):(\$[^{}]*)\}")
_TOKEN_RE = re.compile(r"\.([^.\[\]]+)|\[\s*'([^']*)'\s*\]|\[\s*\"([^\"]*)\"\s*\]|\[\s*(\*|-?\d+)\s*\]")


class RefError(ValueError):
    pass


def _steps(path: str) -> list[str]:
    path = path.strip()
    if not path.startswith("$"):
        raise RefError(f"JSONPath must start with '$': {path!r}")
    rest = path[1:]
    steps: list[str] = []
    pos = 0
    while pos < len(rest):
        m = _TOKEN_RE.match(rest, pos)
        if not m:
            raise RefError(f"unsupported JSONPath {path!r}")
        steps.append(next(g for g in m.groups() if g is not None))
        pos = m.end()
    return steps


def jsonpath(doc: Any, path: str) -> list[Any]:
    """All values of ``doc`` matched by ``path``."""
    current = [doc]
    for step in _steps(path):
        nxt: list[Any] = []
        for node in current:
            if step == "*":
                if isinstance(node, dict):
                    nxt.extend(node.values())
                elif isinstance(node, list):
                    nxt.extend(node)
            elif isinstance(node, dict):
                if step in node:
                    nxt.append(node[step])
            elif isinstance(node, list):
                try:
                    idx = int(step)
                except ValueError:
                    continue
                if -len(node) <= idx < len(node):
                    nxt.append(node[idx])
        current = nxt
    return current


def render(values: list[Any]) -> str:
    parts = []
    for v in values:
        if isinstance(v, str):
            parts.append(v)
        elif isinstance(v, bool):
            parts.append("true" if v else "false")
        elif isinstance(v, (int, float)):
            parts.append(str(v))
        elif v is None:
            parts.append("null")
        else:
            parts.append(json.dumps(v, separators=(",", ":")))
    return ",".join(parts)


def referenced_names(text: str) -> list[str]:
    return [m.group(1) for m in REF_RE.finditer(text or "")]


def substitute(text: str, lookup: Callable[[str], Any]) -> str:
    """Replace every reference in ``text``; ``lookup(name)`` returns the parsed result or raises RefError."""
    if not text or "{result=" not in text:
        return text

    def repl(m: re.Match[str]) -> str:
        name, path = m.group(1), m.group(2)
        values = jsonpath(lookup(name), path)
        if not values:
            raise RefError(f"JSONPath {path} matched nothing in the result of {name!r}")
        return render(values)

    return REF_RE.sub(repl, text)
