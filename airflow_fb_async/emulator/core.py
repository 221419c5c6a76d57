"""Shared request/response types and small helpers."""

from __future__ import annotations

import base64
import email.parser
import email.policy
import json
import re
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from . import lenient_json
from .errors import GraphError, bad_json, param_error

DEFAULT_VERSION = "v25.0"
VERSION_RE = re.compile(r"^v\d+\.\d+$")
ACT_RE = re.compile(r"^act_(\d+)$")
RESERVED_PARAMS = frozenset(
    {
        "access_token",
        "appsecret_proof",
        "appsecret_time",
        "redownload",
        "fields",
        "pretty",
        "format",
        "suppress_http_code",
        "locale",
        "method",
        "include_headers",
    }
)


@dataclass
class Call:
    method: str
    path: str  # without the version prefix and without surrounding slashes
    params: dict[str, str] = field(default_factory=dict)  # query + form
    query: dict[str, str] = field(default_factory=dict)  # query only (for paging links)
    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)  # part name -> (filename, data)
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names
    token: str | None = None
    base_url: str = ""
    version: str = DEFAULT_VERSION
    in_batch: bool = False
    internal: bool = False  # async request processing: no auth, no throttling
    empty_page: bool = False
    accounts: list[str | None] | None = None  # cache of Engine.accounts_of
    ordinal: int = 0  # position among the non-admin HTTP calls (seeds this call's random faults)
    entry_fault: dict[str, Any] | None = None  # a queued entry_error_after_commit taken by this batch
    entry_faults: int = 0  # batch entries whose answer an entry fault replaced

    @property
    def segs(self) -> list[str]:
        return [s for s in self.path.split("/") if s] if self.path else []


@dataclass
class Resp:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)
    text: str | None = None  # the body serialized (compact JSON), when already computed


def now_iso(ts: float | None = None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S+0000", time.gmtime(ts if ts is not None else time.time()))


def split_version(path: str) -> tuple[str | None, str]:
    """``/v25.0/act_1/ads`` -> (``v25.0``, ``act_1/ads``)."""
    segs = [s for s in path.split("/") if s]
    version = None
    if segs and VERSION_RE.match(segs[0]):
        version = segs.pop(0)
    return version, "/".join(segs)


def parse_bool(value: Any) -> bool | None:
    if value is None:
        return None
    s = str(value).strip().lower()
    if s in ("1", "true", "yes"):
        return True
    if s in ("0", "false", "no"):
        return False
    return None


def parse_json_param(params: dict[str, str], name: str) -> Any:
    raw = params.get(name)
    if raw is None:
        return None
    try:
        return lenient_json.loads(raw)
    except ValueError as exc:
        raise bad_json(name, str(exc)) from None


def load_json_array(raw: str, name: str, message: str, user_msg: str) -> Any:
    """``raw`` read as (lenient) JSON, or a code 100 error ``message: <why>`` titled ``Invalid <name>``
    (the caller checks that it is the list it wants)."""
    try:
        return lenient_json.loads(raw)
    except ValueError as exc:
        raise GraphError(
            f"(#100) {message}: {exc}", 100, user_title=f"Invalid {name}", user_msg=user_msg
        ) from None


def parse_list_param(params: dict[str, str], name: str) -> list[str] | None:
    """A list given as JSON (``["a","b"]``) or comma separated."""
    raw = params.get(name)
    if raw is None:
        return None
    raw = raw.strip()
    if raw.startswith("["):
        value = parse_json_param(params, name)
        if not isinstance(value, list):
            raise bad_json(name)
        return [str(v).strip() for v in value if str(v).strip()]
    return [p.strip() for p in raw.split(",") if p.strip()]


def parse_fields(raw: str | None) -> list[str] | None:
    if raw is None:
        return None
    raw = raw.strip()
    if not raw:
        return None
    if raw.startswith("["):
        try:
            value = lenient_json.loads(raw)
        except ValueError:
            raise bad_json("fields") from None
        return [str(v) for v in value] if isinstance(value, list) else None
    out: list[str] = []
    depth = 0
    cur: list[str] = []
    for ch in raw + ",":
        if ch in "{(":
            depth += 1
        elif ch in "})":
            depth -= 1
        if ch == "," and depth == 0:
            name = "".join(cur).strip()
            name = re.split(r"[{.(]", name, maxsplit=1)[0].strip()
            if name:
                out.append(name)
            cur = []
        else:
            cur.append(ch)
    return out


def encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"emu:{seq}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        text = base64.urlsafe_b64decode(padded.encode()).decode()
        if not text.startswith("emu:"):
            raise ValueError
        return int(text[4:])
    except (ValueError, UnicodeDecodeError):
        raise param_error(f"Invalid cursor: {cursor!r}") from None


def seq_of(obj: dict[str, Any]) -> int:
    digits = re.sub(r"\D", "", str(obj.get("id", "")))
    return int(digits) if digits else 0


def decode_body(body: str) -> str:
    """A form body that was URL-encoded twice (``name%3DX%26...``) is decoded once first."""
    if "=" not in body and "%3d" in body.lower():
        return urllib.parse.unquote(body)
    return body


def parse_form(body: str) -> dict[str, str]:
    return dict(urllib.parse.parse_qsl(decode_body(body), keep_blank_values=True))


def split_relative_url(url: str) -> tuple[str | None, str, dict[str, str]]:
    """``v25.0/act_1/ads?fields=id`` -> (version, path, query)."""
    url = url.strip()
    if url.startswith(("http://", "https://")):
        url = urllib.parse.urlsplit(url)._replace(scheme="", netloc="").geturl()
    if "?" in url:
        path, qs = url.split("?", 1)
    elif "&" in url:  # Graph tolerates ``<id>/ads&fields=...`` (seen in Meta's own docs)
        path, qs = url.split("&", 1)
    else:
        path, qs = url, ""
    version, rest = split_version(urllib.parse.unquote(path))
    return version, rest, dict(urllib.parse.parse_qsl(qs, keep_blank_values=True))


def parse_body(content_type: str, raw: bytes) -> tuple[dict[str, str], dict[str, tuple[str, bytes]]]:
    ctype = (content_type or "").split(";", 1)[0].strip().lower()
    if not raw:
        return {}, {}
    if ctype == "multipart/form-data":
        head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
        msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + raw)
        if not msg.is_multipart():
            raise ValueError("malformed multipart body")
        form: dict[str, str] = {}
        files: dict[str, tuple[str, bytes]] = {}
        for part in msg.iter_parts():
            name = part.get_param("name", header="content-disposition")
            if not name:
                continue
            raw_payload = part.get_payload(decode=True)
            payload = raw_payload if isinstance(raw_payload, bytes) else b""
            filename = part.get_filename()
            if filename is not None:
                files[str(name)] = (filename, payload)
            else:
                form[str(name)] = payload.decode("utf-8", "replace")
        return form, files
    if ctype == "application/json":
        obj = json.loads(raw.decode("utf-8"))
        if not isinstance(obj, dict):
            raise ValueError("a JSON body must be an object")
        return {k: v if isinstance(v, str) else json.dumps(v) for k, v in obj.items()}, {}
    return dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True)), {}


def classify(method: str, path: str, params: dict[str, str]) -> str:
    segs = [s for s in path.split("/") if s]
    if method == "POST":
        if not segs:
            return "batch" if "batch" in params else "other"
        if len(segs) == 2:
            if segs[1] == "async_batch_requests":
                return "async_batch_create"
            if segs[1] == "insights":
                return "insights_start"
            return "upload" if segs[1] == "adimages" else "create"
        return "update" if len(segs) == 1 else "other"
    if method == "DELETE":
        return "delete" if len(segs) == 1 else "other"
    if method == "GET":
        if not segs:
            return "get_multi" if "ids" in params else ("get_object" if "id" in params else "other")
        if len(segs) == 1:
            return "get_edge" if segs[0] == "requests" else "get_object"
        if len(segs) == 2:
            return "other" if segs[1] == "reachestimate" else "get_edge"
    return "other"
