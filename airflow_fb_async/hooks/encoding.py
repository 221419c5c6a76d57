"""Graph parameter and form-body encoding, shared by the hooks, the batch engine and request sets."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, overload
from urllib.parse import parse_qsl, quote

from airflow_fb_async.hooks.references import REF_RE

if TYPE_CHECKING:
    from collections.abc import Mapping


def encode_value(value: Any) -> str:
    """A Graph parameter value as text: bools lower case, lists/dicts as compact JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8")
    return json.dumps(value, separators=(",", ":"), default=str)


def encode_fields(values: Mapping[str, Any] | str | None) -> dict[str, str]:
    """Query/form fields as ``{name: text}``; None values dropped; a query string is parsed."""
    if values is None:
        return {}
    if isinstance(values, str):
        return dict(parse_qsl(values, keep_blank_values=True))
    return {str(k): encode_value(v) for k, v in values.items() if v is not None}


def quote_keeping_references(text: str) -> str:
    """Percent-encode ``text`` for a form body, leaving ``{result=NAME:$.path}`` tokens verbatim.

    Graph resolves references in the body; keeping them verbatim works whether the server substitutes
    before or after decoding the form.
    """
    out: list[str] = []
    pos = 0
    for match in REF_RE.finditer(text):
        out.append(quote(text[pos : match.start()], safe=""))
        out.append(match.group(0))
        pos = match.end()
    out.append(quote(text[pos:], safe=""))
    return "".join(out)


@overload
def encode_body(body: None) -> None: ...


@overload
def encode_body(body: Mapping[str, Any] | str) -> str: ...


def encode_body(body: Mapping[str, Any] | str | None) -> str | None:
    """A request body as a URL-encoded form string (a string is taken as already encoded).

    A dict is encoded with dict/list values as compact JSON (``targeting``, ``object_story_spec``),
    booleans as ``true``/``false`` and ``None`` values left out; references stay readable.
    """
    if body is None or isinstance(body, str):
        return body
    return "&".join(
        f"{quote_keeping_references(str(key))}={quote_keeping_references(encode_value(value))}"
        for key, value in body.items()
        if value is not None
    )
