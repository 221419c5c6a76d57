"""Reading a list that a Jinja template rendered to text (``"['1', '2']"`` or JSON)."""

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
