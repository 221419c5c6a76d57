"""Batch references ``{result=NAME:$.path}``: the one place that finds them in URLs and bodies.

Used by the standard batch engine (:mod:`.batch`), the async request set planner
(:mod:`.request_sets`) and the form encoder (:mod:`.encoding`, which keeps them readable).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

# {result=NAME:$.path}, raw, and its percent-encoded spelling (bodies written already encoded).
#: Every raw reference starts with this (a plain ``in`` test skips the regexes for most texts).
REF_MARKER = "{result="
REF_RE = re.compile(r"\{result=([^:{}]*):([^{}]*)\}")
ENC_REF_RE = re.compile(r"%7Bresult%3D(.*?)%3A(.*?)%7D", re.IGNORECASE)
_MARKER_RE = re.compile(r"\{result=|(?i:%7Bresult%3D)")


@dataclass(frozen=True)
class Reference:
    """One ``{result=NAME:$.path}`` occurrence: its exact text and where it was found."""

    token: str
    name: str
    path: str
    encoded: bool


def find_references(text: str | None) -> list[Reference]:
    """Every reference in a URL or body, raw (``{result=a:$.id}``) or percent-encoded."""
    if not text:
        return []
    refs = [Reference(m.group(0), m.group(1), m.group(2), False) for m in REF_RE.finditer(text)]
    refs += [
        Reference(m.group(0), unquote(m.group(1)), unquote(m.group(2)), True)
        for m in ENC_REF_RE.finditer(text)
    ]
    return refs


def reference_names(*texts: str | None) -> list[str]:
    """Names referenced in the texts (raw or percent-encoded), in order, each once."""
    names: list[str] = []
    for text in texts:
        for ref in find_references(text):
            if ref.name not in names:
                names.append(ref.name)
    return names


def has_reference_marker(text: str | None) -> bool:
    """Whether ``text`` starts a reference (``{result=``, raw or encoded), well-formed or not."""
    if not text:
        return False
    # Hot (every URL and body of a batch): plain substring tests first, the regex only for "%...".
    return REF_MARKER in text or ("%" in text and _MARKER_RE.search(text) is not None)
