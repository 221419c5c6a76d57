"""Reading values that arrive as text: a list a Jinja template rendered (``"['1', '2']"`` or JSON),
and the JSON that Graph returns inside string fields (a request's ``result`` and ``input``)."""

from __future__ import annotations

import ast
import json
from typing import Any


def parse_literal(text: str) -> Any:
    """``text`` read as JSON, else as a Python literal; ValueError when it is neither."""
    text = text.strip()
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        raise ValueError(f"not a JSON or Python literal: {text[:80]!r}") from None


def parse_rendered_list(value: Any) -> Any:
    """A template field rendered to text (``"{{ ti.xcom_pull(...) }}"`` without native rendering
    gives ``"[{...}, ...]"``): a string that reads as a JSON or Python list becomes that list;
    anything else is returned as is, for the caller's validation to name."""
    if not isinstance(value, str) or not value.strip().startswith("["):
        return value
    try:
        return parse_literal(value)
    except ValueError:
        return value


def is_empty_list(value: Any) -> bool:
    """Whether ``value`` is an empty id list as an XCom may carry it: ``[]``, ``()``, ``{}`` (an empty
    ``{set_id: counts}`` summary), a list of empty lists (a mapped submit that had nothing to do),
    or any of these rendered to text (``"[]"``). ``None`` and ``""`` are not: they mean a missing
    value, which the caller reports."""
    if isinstance(value, str):
        text = value.strip()
        if not text.startswith(("[", "(", "{")):
            return False
        try:
            value = parse_literal(text)
        except ValueError:
            return False
        if isinstance(value, str):
            return False
    if isinstance(value, dict):
        return not value
    if isinstance(value, list | tuple):
        return all(is_empty_list(item) for item in value)
    return False


def parse_json_text(value: Any) -> Any:
    """A string holding JSON (an object, array, string, ``true``/``false``/``null``) parsed; anything
    else, or text that is not valid JSON, returned as is. Graph sends an async request's ``result``
    and ``input`` either as JSON or as a JSON string, depending on the version and the field."""
    if isinstance(value, str):
        text = value.strip()
        if text[:1] in ("{", "[", '"') or text in ("true", "false", "null"):
            try:
                return json.loads(text)
            except ValueError:
                return value
    return value
