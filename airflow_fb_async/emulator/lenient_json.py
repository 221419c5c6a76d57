"""A forgiving JSON reader, as Graph's own parser is.

Graph accepts JavaScript-object-literal style values in parameters (the public docs use
``{'geo_locations': {'countries':['US']}}`` and ``[{field:'ad.id',operator:'IN',value:[1,2]}]``):
single-quoted strings, unquoted keys and trailing commas. Anything else that is not JSON is an error.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["LenientJSONError", "loads"]

_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?")
_IDENT = re.compile(r"[A-Za-z_$][A-Za-z0-9_$.]*")
_ESCAPES = {'"': '"', "'": "'", "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_WORDS = {"true": True, "false": False, "null": None, "True": True, "False": False, "None": None}


class LenientJSONError(ValueError):
    pass


def loads(text: str) -> Any:
    """Parse ``text`` as JSON, falling back to the lenient grammar."""
    if not isinstance(text, str):
        raise LenientJSONError("not a string")
    try:
        return json.loads(text)
    except ValueError:
        pass
    parser = _Parser(text)
    value = parser.value()
    parser.ws()
    if parser.pos != len(text):
        raise LenientJSONError(f"unexpected data at position {parser.pos}")
    return value


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def ws(self) -> None:
        text = self.text
        while self.pos < len(text) and text[self.pos] in " \t\r\n":
            self.pos += 1

    def peek(self) -> str:
        self.ws()
        if self.pos >= len(self.text):
            raise LenientJSONError("unexpected end of input")
        return self.text[self.pos]

    def value(self) -> Any:
        ch = self.peek()
        if ch == "{":
            return self.obj()
        if ch == "[":
            return self.arr()
        if ch in "\"'":
            return self.string()
        m = _NUMBER.match(self.text, self.pos)
        if m:
            self.pos = m.end()
            s = m.group()
            return float(s) if any(c in s for c in ".eE") else int(s)
        m = _IDENT.match(self.text, self.pos)
        if m and m.group() in _WORDS:
            self.pos = m.end()
            return _WORDS[m.group()]
        raise LenientJSONError(f"unexpected character {ch!r} at position {self.pos}")

    def string(self) -> str:
        quote = self.text[self.pos]
        self.pos += 1
        out: list[str] = []
        text = self.text
        while True:
            if self.pos >= len(text):
                raise LenientJSONError("unterminated string")
            ch = text[self.pos]
            if ch == quote:
                self.pos += 1
                return "".join(out)
            if ch == "\\":
                self.pos += 1
                if self.pos >= len(text):
                    raise LenientJSONError("bad escape")
                esc = text[self.pos]
                if esc == "u":
                    hexdigits = text[self.pos + 1 : self.pos + 5]
                    if len(hexdigits) != 4:
                        raise LenientJSONError("bad unicode escape")
                    try:
                        out.append(chr(int(hexdigits, 16)))
                    except ValueError as exc:
                        raise LenientJSONError("bad unicode escape") from exc
                    self.pos += 5
                    continue
                if esc not in _ESCAPES:
                    raise LenientJSONError(f"bad escape \\{esc}")
                out.append(_ESCAPES[esc])
                self.pos += 1
                continue
            out.append(ch)
            self.pos += 1

    def key(self) -> str:
        ch = self.peek()
        if ch in "\"'":
            return self.string()
        m = _IDENT.match(self.text, self.pos)
        if not m:
            raise LenientJSONError(f"bad object key at position {self.pos}")
        self.pos = m.end()
        return m.group()

    def obj(self) -> dict[str, Any]:
        self.pos += 1
        out: dict[str, Any] = {}
        while True:
            if self.peek() == "}":
                self.pos += 1
                return out
            k = self.key()
            if self.peek() != ":":
                raise LenientJSONError(f"expected ':' at position {self.pos}")
            self.pos += 1
            out[k] = self.value()
            ch = self.peek()
            if ch == ",":
                self.pos += 1
            elif ch != "}":
                raise LenientJSONError(f"expected ',' or '}}' at position {self.pos}")

    def arr(self) -> list[Any]:
        self.pos += 1
        out: list[Any] = []
        while True:
            if self.peek() == "]":
                self.pos += 1
                return out
            out.append(self.value())
            ch = self.peek()
            if ch == ",":
                self.pos += 1
            elif ch != "]":
                raise LenientJSONError(f"expected ',' or ']' at position {self.pos}")
