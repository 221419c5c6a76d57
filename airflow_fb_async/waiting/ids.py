"""Reading request set (and other object) ids from whatever a template or an XCom rendered.

The one id-list parser of the package: the waiters (trigger, sensor, submit operator), the results
and cancel operators all read their ids with :func:`normalize_ids`, so every XCom of
``SubmitAsyncBatchOperator`` (the id list, the ``wait_for_completion`` summary, the list of lists
of a mapped submit) works as is everywhere.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from airflow_fb_async.exceptions import GraphInputError
from airflow_fb_async.literals import parse_literal

_ID_RE = re.compile(r"^[0-9]+$")


def normalize_ids(value: Any, what: str = "request_set_ids", noun: str = "request set id") -> list[str]:
    """Turn one id, a list of ids, a rendered string (JSON list, Python list repr, comma list) or a
    request set summary ``{set_id: {counts}}`` into a de-duplicated list of digit-string ids.

    Raises :class:`GraphInputError` naming ``what`` and the offending item (before any HTTP call).
    """
    flat: list[str] = []

    def bad(label: str, item: Any) -> GraphInputError:
        return GraphInputError(f"{label}: {short_repr(item)} is not a {noun} (expected a string of digits)")

    def add(item: Any, label: str, depth: int) -> None:
        if depth > 3:
            raise GraphInputError(f"{what}: nested too deeply: {short_repr(value)}")
        if isinstance(item, bool) or item is None:
            raise bad(label, item)
        if isinstance(item, int):
            if item <= 0:
                raise bad(label, item)
            flat.append(str(item))
            return
        if isinstance(item, str):
            text = item.strip()
            if text.startswith(("[", "(", "{")):
                add(_parse_list_text(text, what), label, depth + 1)
                return
            if "," in text:
                for index, part in enumerate(text.split(",")):
                    add(part, f"{label}[{index}]", depth + 1)
                return
            text = text.strip("'\" ")
            if not _ID_RE.match(text):
                raise bad(label, item)
            flat.append(text)
            return
        if isinstance(item, Mapping) and item and all(isinstance(v, Mapping) for v in item.values()):
            item = list(item)  # a summary {set_id: counts}: its keys are the ids
        if isinstance(item, Iterable) and not isinstance(item, (bytes, Mapping)):
            for index, sub in enumerate(item):
                add(sub, f"{label}[{index}]", depth + 1)
            return
        raise GraphInputError(
            f"{label}: expected an id, a string or a list of ids, or a request set summary "
            f"{{set_id: counts}}, got {type(item).__name__}: {short_repr(item)}"
        )

    if value is None or (isinstance(value, str) and not value.strip()):
        raise GraphInputError(f"{what} is empty (got {value!r}): give at least one {noun}")
    add(value, what, 0)
    ids = list(dict.fromkeys(flat))
    if not ids:
        raise GraphInputError(f"{what} is empty (got {short_repr(value)}): give at least one {noun}")
    return ids


def normalize_set_ids(value: Any) -> list[str]:
    """:func:`normalize_ids` for ``request_set_ids``."""
    return normalize_ids(value)


def _parse_list_text(text: str, what: str = "request_set_ids") -> Any:
    try:
        return parse_literal(text)
    except ValueError:
        raise GraphInputError(f"{what}: cannot parse {short_repr(text)} as a list of ids") from None


def short_repr(value: Any, limit: int = 80) -> str:
    """``repr(value)``, truncated for error messages."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
