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
