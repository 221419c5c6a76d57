"""Graph parameter and form-body encoding, shared by the hooks, the batch engine and request sets.

One rule for every value sent to Graph (query parameters, form fields, batch and async bodies):
``str`` as is, ``bool`` as ``true``/``false``, numbers as text, ``datetime``/``date`` (pendulum too)
as ISO 8601, lists, tuples and dicts as compact JSON (datetimes inside as ISO strings, tuples as
lists). Anything else (a set, bytes, an arbitrary object, NaN) is refused with a
:class:`~airflow_fb_async.exceptions.GraphInputError` naming the key and the type, before any
HTTP call: sending its ``repr`` would make Graph store garbage.

Also here: the ``fields`` parameter (:func:`fields_param`) and multipart files, read up front so
that a retry can send them again (:func:`normalize_files`).
"""

from __future__ import annotations

import datetime
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, overload
from urllib.parse import parse_qsl, quote

from airflow_fb_async.exceptions import GraphInputError
from airflow_fb_async.hooks.references import REF_MARKER, REF_RE

#: Deeper nesting than this is refused (a cycle would otherwise recurse forever).
MAX_DEPTH = 64
_ACCEPTED = "JSON values (str, int, float, bool, None, list, tuple, dict with str keys), datetime or date"


class _BadValue(Exception):
    """A value that cannot be sent: where it sits (``key``, ``key.sub[0]``) and why."""

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(where, problem)
        self.where = where
        self.problem = problem


def _jsonable(value: Any, where: str, depth: int = 0) -> Any:
    """``value`` with datetimes/dates as ISO strings and tuples as lists; _BadValue otherwise."""
    if depth > MAX_DEPTH:
        raise _BadValue(where, f"nesting deeper than {MAX_DEPTH} levels (a cycle?)")
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _BadValue(where, f"float {value!r} is not JSON-serialisable")
        return value
    if isinstance(value, datetime.date):  # datetime and pendulum DateTime/Date are dates too
        return value.isoformat()
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise _BadValue(where, f"dict key {key!r} of type {type(key).__name__} is not a string")
            out[key] = _jsonable(item, f"{where}.{key}", depth + 1)
        return out
    if isinstance(value, list | tuple):
        return [_jsonable(item, f"{where}[{i}]", depth + 1) for i, item in enumerate(value)]
    raise _BadValue(where, f"a value of type {type(value).__name__} is not JSON-serialisable")


def _to_text(value: Any, where: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime.date):
        return value.isoformat()
    jsonable = _jsonable(value, where)
    if isinstance(jsonable, int | float):
        return str(jsonable)
    return json.dumps(jsonable, separators=(",", ":"), allow_nan=False)


def _input_error(err: _BadValue, what: str, index: int | None, name: str | None) -> GraphInputError:
    return GraphInputError(
        f"{what} {err.where!r}: {err.problem} (accepted: {_ACCEPTED})", index=index, name=name
    )


def encode_value(value: Any, key: str = "value") -> str:
    """A Graph parameter value as text: bools lower case, datetimes ISO 8601, lists/dicts compact JSON.

    :raises GraphInputError: naming ``key`` and the type, for a value that is not JSON.
    """
    try:
        return _to_text(value, key)
    except _BadValue as err:
        raise _input_error(err, "parameter", None, None) from None


def encode_fields(values: Mapping[str, Any] | str | None) -> dict[str, str]:
    """Query/form fields as ``{name: text}``; None values dropped; a query string is parsed."""
    if values is None:
        return {}
    if isinstance(values, str):
        return dict(parse_qsl(values, keep_blank_values=True))
    return {str(k): encode_value(v, str(k)) for k, v in values.items() if v is not None}


# quote(text, safe="") for ASCII text without urllib's Python step per byte: one regex pass for
# short text (a body key or value), one C-speed str.replace per distinct unsafe character for long
# text (a standard batch's JSON, where a regex callback would run on every other character).
_UNSAFE_ASCII_RE = re.compile(r"[^A-Za-z0-9_.~-]")
_ESCAPES = {chr(c): f"%{c:02X}" for c in range(128)}
# (unsafe character, escape) pairs, ``%`` first and ``+`` second: later replacements write ``%``
# (and ``+`` for a form's space), which must not be escaped again.
_UNSAFE_ESCAPES = sorted(
    ((ch, esc) for ch, esc in _ESCAPES.items() if _UNSAFE_ASCII_RE.match(ch)),
    key=lambda pair: pair[0] not in "%+",
)
_FORM_ESCAPES = [(ch, "+" if ch == " " else esc) for ch, esc in _UNSAFE_ESCAPES]
_LONG_TEXT = 128


def _escape(match: re.Match[str]) -> str:
    return _ESCAPES[match.group()]


def _escape_by_replace(text: str, escapes: list[tuple[str, str]]) -> str:
    """Percent-encode ASCII ``text``: one ``str.replace`` per unsafe character present (a
    single-character ``in`` is a C ``memchr``: checking all 62 costs less than one regex pass)."""
    for ch, esc in escapes:
        if ch in text:
            text = text.replace(ch, esc)
    return text


def quote_all(text: str) -> str:
    """``urllib.parse.quote(text, safe="")``, faster for ASCII text (every body key and value, the
    batch text)."""
    if not text.isascii():
        return quote(text, safe="")
    if len(text) > _LONG_TEXT:
        return _escape_by_replace(text, _UNSAFE_ESCAPES)
    return _UNSAFE_ASCII_RE.sub(_escape, text)


#: Content type of a body built by :func:`encode_form`.
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"


def quote_form(text: str) -> str:
    """``urllib.parse.quote_plus(text, safe="")``: a form field's key or value (space as ``+``).

    ``%20`` only ever comes from a space in :func:`quote_all`'s output (a literal ``%`` is ``%25``).
    """
    if len(text) > _LONG_TEXT and text.isascii():
        return _escape_by_replace(text, _FORM_ESCAPES)
    return quote_all(text).replace("%20", "+")


def encode_form(fields: Mapping[str, str]) -> bytes:
    """A form body, byte for byte what ``requests`` sends for ``data=fields`` (``urlencode``).

    ``requests`` walks the text a byte at a time in Python (urllib's quoter): on a 4 KB standard
    batch field that is the biggest client cost of a call. The body may carry ``access_token`` (the
    root POST): it goes on the wire only, like the form ``requests`` would have built.
    """
    return "&".join(f"{quote_form(key)}={quote_form(value)}" for key, value in fields.items()).encode("ascii")


def quote_keeping_references(text: str) -> str:
    """Percent-encode ``text`` for a form body, leaving ``{result=NAME:$.path}`` tokens verbatim.

    Graph resolves references in the body; keeping them verbatim works whether the server substitutes
    before or after decoding the form.
    """
    if REF_MARKER not in text:  # the common case (hot: every body key and value)
        return quote_all(text)
    out: list[str] = []
    pos = 0
    for match in REF_RE.finditer(text):
        out.append(quote_all(text[pos : match.start()]))
        out.append(match.group(0))
        pos = match.end()
    out.append(quote_all(text[pos:]))
    return "".join(out)


@overload
def encode_body(body: None, *, index: int | None = None, name: str | None = None) -> None: ...


@overload
def encode_body(
    body: Mapping[str, Any] | str, *, index: int | None = None, name: str | None = None
) -> str: ...


def encode_body(
    body: Mapping[str, Any] | str | None, *, index: int | None = None, name: str | None = None
) -> str | None:
    """A request body as a URL-encoded form string (a string is taken as already encoded).

    A dict is encoded with the module's value rule (dict/list values as compact JSON for
    ``targeting``, ``object_story_spec``...; datetimes ISO 8601), ``None`` values left out;
    references stay readable. ``index``/``name`` identify the request in errors.

    :raises GraphInputError: naming the request, the body key and the type of a value that is not JSON.
    """
    if body is None or isinstance(body, str):
        return body
    parts = []
    for key, value in body.items():
        if value is None:
            continue
        key = key if type(key) is str else str(key)
        if type(value) is str:
            text = value
        else:
            try:
                text = _to_text(value, key)
            except _BadValue as err:
                raise _input_error(err, "body key", index, name) from None
        parts.append(f"{quote_keeping_references(key)}={quote_keeping_references(text)}")
    return "&".join(parts)


def fields_param(fields: str | Iterable[str] | None, default: Sequence[str] | None = None) -> str | None:
    """A ``fields`` parameter: a comma string as is, a list joined (blanks and repeats dropped),
    None -> ``default`` joined (or None: Graph's default fields)."""
    if fields is None:
        return ",".join(default) if default else None
    if isinstance(fields, str):
        return fields
    items = [str(f).strip() for f in fields if str(f).strip()]
    return ",".join(dict.fromkeys(items)) or None


# Multipart files ------------------------------------------------------------------------------

FileSpec = tuple[str, bytes, str | None]


def normalize_files(files: Mapping[str, Any] | None) -> dict[str, FileSpec] | None:
    """Read multipart files up front (so a retry can resend them): ``{field: (name, bytes, type)}``.

    Accepts ``bytes``, a file object, or a tuple ``(filename, bytes|fileobj[, content_type])``.
    """
    if not files:
        return None
    out: dict[str, FileSpec] = {}
    for name, spec in files.items():
        filename, content, ctype = str(name), spec, None
        if isinstance(spec, tuple | list):
            if len(spec) < 2:
                raise GraphInputError(f"file {name!r}: expected (filename, content[, content_type])")
            filename, content = str(spec[0]), spec[1]
            ctype = spec[2] if len(spec) > 2 else None
        if hasattr(content, "read"):
            content = content.read()
        if isinstance(content, str):
            content = content.encode("utf-8")
        if not isinstance(content, bytes | bytearray):
            raise GraphInputError(f"file {name!r}: content must be bytes or a file object")
        out[str(name)] = (filename, bytes(content), ctype)
    return out
