"""Sans-IO core shared by :class:`GraphHook` (requests) and :class:`GraphAsyncHook` (httpx).

Nothing here does I/O or sleeps. The hooks run this loop, differing only in the client call and
``time.sleep`` vs ``await asyncio.sleep``::

    call = core.new_call(method, path, ...)
    while True:
        pause = call.throttle_pause()           # proactive / blocked-account wait
        if pause: sleep(pause)
        req = call.build()                      # fresh request (fresh timed appsecret_proof)
        try: resp = client.send(req)
        except TransportError as exc:
            outcome = call.on_transport_error(exc, sent=<after the request left?>)
        else:
            outcome = call.on_response(resp.status, resp.headers, resp.body)
        if outcome.done: return outcome.value
        if outcome.delay is None: raise outcome.error
        sleep(outcome.delay)

Pieces: connection config parsing (:func:`parse_conn_config`), token scrubbing (:class:`Scrubber`),
request building with auth (:meth:`GraphCall.build`), response and error parsing
(:func:`error_from_response`), the retry policy (:mod:`.retry`), the throttle state (:mod:`.throttle`),
the ETag cache (:class:`EtagCache`) and the pagination step (:func:`next_page_params`).
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote, quote_plus, urlencode, urlsplit

from airflow_fb_async.exceptions import (
    GraphAmbiguousError,
    GraphAPIError,
    GraphAuthError,
    GraphInputError,
    GraphThrottledError,
    GraphTransientError,
)
from airflow_fb_async.hooks.encoding import encode_fields as encode_fields
from airflow_fb_async.hooks.encoding import encode_value as encode_value
from airflow_fb_async.hooks.retry import (
    AUTH_CODES,
    THROTTLE_CODES,
    RetryPolicy,
    is_repeatable,
    is_uncertain_status,
)
from airflow_fb_async.hooks.statuses import SET_COUNT_FIELDS
from airflow_fb_async.hooks.throttle import MAX_THROTTLE_WAIT, ThrottleState, accounts_in, regain_seconds

log = logging.getLogger("airflow_fb_async.hooks.graph")

CONN_TYPE = "facebook_graph"
DEFAULT_CONN_ID = "facebook_graph_default"
DEFAULT_HOST = "https://graph.facebook.com"
DEFAULT_API_VERSION = "v25.0"
EXTRA_PREFIX = f"extra__{CONN_TYPE}__"
MULTI_ID_CHUNK = 50
ETAG_CACHE_SIZE = 256
USER_AGENT = "airflow-fb-async/0.1"
# Query / form fields that are credentials or derived from them: never in cache keys or logs.
AUTH_FIELDS = frozenset({"access_token", "appsecret_proof", "appsecret_time"})


# --------------------------------------------------------------------------------------------------
# Connection config
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GraphConfig:
    """Everything a hook needs from its Airflow connection, parsed and validated once."""

    conn_id: str
    host: str = DEFAULT_HOST
    api_version: str = DEFAULT_API_VERSION
    token: str = field(default="", repr=False)
    app_secret: str | None = field(default=None, repr=False)
    appsecret_time: bool = False
    timeout: float = 60.0
    max_retries: int = 5
    backoff_base: float = 1.0
    backoff_max: float = 60.0
    throttle_threshold: float = 90.0
    regain_unit_seconds: float = 60.0
    max_throttle_wait: float = MAX_THROTTLE_WAIT
    page_size: int = 500

    @property
    def base_url(self) -> str:
        """``{host}/{api_version}`` (no trailing slash)."""
        return f"{self.host}/{self.api_version}"


def extra_value(extra: Mapping[str, Any], key: str) -> Any:
    """Read an extra in either form: ``extra__facebook_graph__<key>`` (UI form) or ``<key>``.

    The prefixed (UI) form wins when both are set to a non-empty value.
    """
    for name in (EXTRA_PREFIX + key, key):
        value = extra.get(name)
        if value is not None and value != "":
            return value
    return None


def _as_bool(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return bool(value)
    text = str(value).strip().lower()
    if text in {"1", "true", "yes", "on", "y", "t"}:
        return True
    if text in {"0", "false", "no", "off", "n", "f", ""}:
        return False
    raise GraphInputError(f"connection extra {key!r} must be a boolean, got {value!r}")


def _as_number(key: str, value: Any, kind: type[int] | type[float], minimum: float) -> Any:
    if isinstance(value, bool):
        raise GraphInputError(f"connection extra {key!r} must be a number, got {value!r}")
    try:
        number = float(value)
        result = int(number) if kind is int else number
    except (TypeError, ValueError):
        raise GraphInputError(f"connection extra {key!r} must be a number, got {value!r}") from None
    if kind is int and number != int(number):
        raise GraphInputError(f"connection extra {key!r} must be an integer, got {value!r}")
    if result < minimum:
        raise GraphInputError(f"connection extra {key!r} must be >= {minimum}, got {value!r}")
    return result


def normalize_api_version(value: Any) -> str:
    """``"v25.0"``, ``"25.0"``, ``"v25"`` -> ``"v25.0"`` style; GraphInputError if unparseable."""
    text = str(value).strip().strip("/")
    if not re.fullmatch(r"v?\d+(\.\d+)?", text):
        raise GraphInputError(f"api_version must look like 'v25.0', got {value!r}")
    if not text.startswith("v"):
        text = "v" + text
    if "." not in text:
        text += ".0"
    return text


def normalize_host(host: str | None, schema: str | None = None, port: int | None = None) -> str:
    """Base URL from the connection's host (scheme optional), like the HTTP provider does."""
    host = (host or "").strip()
    if not host:
        return DEFAULT_HOST
    if "://" not in host:
        scheme = (schema or "").strip() or "https"
        if scheme not in {"http", "https"}:
            scheme = "https"
        host = f"{scheme}://{host}"
    host = host.rstrip("/")
    if port and not re.search(r":\d+$", urlsplit(host).netloc):
        host = f"{host}:{int(port)}"
    return host


def parse_conn_config(
    conn_id: str,
    *,
    host: str | None,
    password: str | None,
    extra: Mapping[str, Any] | None,
    schema: str | None = None,
    port: int | None = None,
    api_version: str | None = None,
) -> GraphConfig:
    """The one connection parsing path of both hooks (pure: the hooks fetch the fields)."""
    extra = extra or {}

    def num(key: str, default: Any, kind: type[int] | type[float], minimum: float) -> Any:
        value = extra_value(extra, key)
        return default if value is None else _as_number(key, value, kind, minimum)

    version = api_version or extra_value(extra, "api_version") or DEFAULT_API_VERSION
    app_secret = extra_value(extra, "app_secret")
    appsecret_time = extra_value(extra, "appsecret_time")
    return GraphConfig(
        conn_id=conn_id,
        host=normalize_host(host, schema, port),
        api_version=normalize_api_version(version),
        token=(password or "").strip(),
        app_secret=str(app_secret) if app_secret is not None else None,
        appsecret_time=_as_bool("appsecret_time", appsecret_time) if appsecret_time is not None else False,
        timeout=num("timeout", 60.0, float, 0.001),
        max_retries=num("max_retries", 5, int, 0),
        backoff_base=num("backoff_base", 1.0, float, 0.0),
        backoff_max=num("backoff_max", 60.0, float, 0.0),
        throttle_threshold=num("throttle_threshold", 90.0, float, 0.0),
        regain_unit_seconds=num("regain_unit_seconds", 60.0, float, 0.0),
        max_throttle_wait=num("max_throttle_wait", MAX_THROTTLE_WAIT, float, 0.0),
        page_size=num("page_size", 500, int, 1),
    )


# --------------------------------------------------------------------------------------------------
# Scrubbing
# --------------------------------------------------------------------------------------------------

_SECRET_QUERY_RE = re.compile(
    r"((?:access_token|appsecret_proof)(?:=|%3D|\"\s*:\s*\"))[^&\s\"'#<>,;)]+", re.I
)
_AUTH_HEADER_RE = re.compile(r"\b(OAuth|Bearer)\s+[A-Za-z0-9._~+/=|-]{8,}")
REDACTED = "***"


class Scrubber:
    """Removes secrets from text: the token (raw, URL-encoded, form-encoded), the app secret, and
    every ``access_token=`` / ``appsecret_proof=`` value whatever it is."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        variants: set[str] = set()
        for secret in secrets:
            if not secret:
                continue
            variants.update({secret, quote(secret, safe=""), quote_plus(secret), quote(secret)})
        # Longest first so a variant containing another one is removed whole.
        self._variants = sorted((v for v in variants if v), key=len, reverse=True)

    def __call__(self, text: Any) -> str:
        out = self.secrets_only(text)
        out = _SECRET_QUERY_RE.sub(lambda m: m.group(1) + REDACTED, out)
        return _AUTH_HEADER_RE.sub(lambda m: m.group(1) + " " + REDACTED, out)

    def secrets_only(self, text: Any) -> str:
        """``text`` without the connection's own secrets (token, app secret) and nothing else.

        For data Graph returns (batch entry bodies): a page token asked for with
        ``fields=access_token`` is data, not this connection's credential, and is kept.
        """
        out = text if isinstance(text, str) else str(text)
        for variant in self._variants:
            if variant in out:
                out = out.replace(variant, REDACTED)
        return out


class QueryCredentialsLogFilter(logging.Filter):
    """Redacts ``access_token=`` / ``appsecret_proof=`` values from records of HTTP libraries.

    urllib3 (DEBUG) and httpx (INFO) log request URLs themselves; Graph only takes
    ``appsecret_proof`` as a parameter, so on GET/DELETE it is in the query they log.
    """

    _scrub = Scrubber()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = self._scrub(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


HTTP_LIBRARY_LOGGERS = ("urllib3.connectionpool", "httpx")


def install_library_log_filter() -> None:
    """Attach :class:`QueryCredentialsLogFilter` once to the loggers of the HTTP libraries we use."""
    for name in HTTP_LIBRARY_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, QueryCredentialsLogFilter) for f in logger.filters):
            logger.addFilter(QueryCredentialsLogFilter())


# --------------------------------------------------------------------------------------------------
# Multipart files (parameter encoding: :mod:`airflow_fb_async.hooks.encoding`)
# --------------------------------------------------------------------------------------------------

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


def split_path(path: str) -> tuple[str, dict[str, str]]:
    """``"act_1/campaigns?fields=id"`` -> ``("act_1/campaigns", {"fields": "id"})``.

    Credentials found in the query (``access_token`` etc.) are dropped. An absolute URL (say a
    ``paging.next``) keeps only its path after the API version.
    """
    path = (path or "").strip()
    query = ""
    if "://" in path:
        parts = urlsplit(path)
        path, query = parts.path, parts.query
        path = re.sub(r"^/?v\d+(\.\d+)?(/|$)", "", path.lstrip("/"))
    elif "?" in path:
        path, query = path.split("?", 1)
    params = {k: v for k, v in parse_qsl(query, keep_blank_values=True) if k not in AUTH_FIELDS}
    return path.strip("/"), params


def appsecret_proof(app_secret: str, token: str, timestamp: int | None = None) -> str:
    """HMAC-SHA256 hex of ``token`` (classic) or ``token|timestamp`` (timed form), keyed by the secret."""
    message = token if timestamp is None else f"{token}|{timestamp}"
    return hmac.new(app_secret.encode("utf-8"), message.encode("utf-8"), hashlib.sha256).hexdigest()


# --------------------------------------------------------------------------------------------------
# ETag cache
# --------------------------------------------------------------------------------------------------

CacheKey = tuple[str, str, tuple[tuple[str, str], ...]]


class EtagCache:
    """Bounded, thread-safe LRU of ``key -> (etag, body)``; keys never contain credentials."""

    def __init__(self, maxsize: int = ETAG_CACHE_SIZE) -> None:
        self.maxsize = maxsize
        self._data: OrderedDict[CacheKey, tuple[str, Any]] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def key(method: str, url: str, params: Mapping[str, str]) -> CacheKey:
        clean = tuple(sorted((k, v) for k, v in params.items() if k not in AUTH_FIELDS))
        return (method.upper(), url, clean)

    def get(self, key: CacheKey) -> tuple[str, Any] | None:
        """``(etag, body)``; the body is a copy: callers may change what they get."""
        with self._lock:
            hit = self._data.get(key)
            if hit is not None:
                self._data.move_to_end(key)
        return None if hit is None else (hit[0], copy.deepcopy(hit[1]))

    def put(self, key: CacheKey, etag: str, body: Any) -> None:
        """Store a copy of ``body`` (the caller keeps and may change the original)."""
        body = copy.deepcopy(body)
        with self._lock:
            self._data[key] = (etag, body)
            self._data.move_to_end(key)
            while len(self._data) > self.maxsize:
                self._data.popitem(last=False)

    def __len__(self) -> int:
        with self._lock:
            return len(self._data)


# --------------------------------------------------------------------------------------------------
# Response and error parsing
# --------------------------------------------------------------------------------------------------


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value) if value is not None and value != "" else None
    except (TypeError, ValueError):
        return None


def parse_json_body(content: bytes) -> Any:
    """Parsed JSON of a body (None when empty). ValueError if not JSON."""
    if not content or not content.strip():
        return None
    return json.loads(content)


def error_class_for(
    status: int | None, code: int | None, is_transient: bool, message: str
) -> type[GraphAPIError]:
    """Which typed error an answer maps to (throttle, auth, transient, other)."""
    if (code is not None and code in THROTTLE_CODES) or status == 429:
        return GraphThrottledError
    lowered = message.lower()
    if (
        (code is not None and code in AUTH_CODES)
        or "appsecret_proof" in lowered
        or "appsecret_time" in lowered
    ):
        return GraphAuthError
    if is_uncertain_status(status, code, is_transient):
        return GraphTransientError
    return GraphAPIError


def error_from_response(
    status: int,
    headers: Mapping[str, Any],
    content: bytes,
    *,
    method: str,
    path: str,
    scrub: Callable[[Any], str],
    regain_unit_seconds: float,
    accounts: Sequence[str] = (),
    max_wait: float = MAX_THROTTLE_WAIT,
) -> GraphAPIError:
    """A typed, scrubbed error for a non-2xx answer (or a 2xx one carrying an error envelope)."""
    try:
        body = parse_json_body(content)
    except ValueError:
        body = None
    envelope = body.get("error") if isinstance(body, Mapping) else None
    if isinstance(envelope, Mapping):
        code = _int_or_none(envelope.get("code"))
        message = str(envelope.get("message") or "no message")
        fields: dict[str, Any] = {
            "code": code,
            "error_subcode": _int_or_none(envelope.get("error_subcode")),
            "type": envelope.get("type"),
            "is_transient": bool(envelope.get("is_transient")),
            "fbtrace_id": envelope.get("fbtrace_id"),
            "error_user_title": envelope.get("error_user_title"),
            "error_user_msg": envelope.get("error_user_msg"),
        }
    else:
        code = None
        snippet = content[:300].decode("utf-8", "replace").strip() if content else ""
        message = f"unexpected HTTP {status} answer" + (f": {snippet}" if snippet else " with an empty body")
        fields = {"code": None, "is_transient": False}
    cls = error_class_for(status, code, bool(fields.get("is_transient")), message)
    if cls is GraphAuthError and ("appsecret" in message.lower()):
        message += " (check the connection's app_secret and appsecret_time extras)"
    elif cls is GraphAuthError and code == 190:
        message += " (the connection's access token is invalid or expired)"
    return make_error(
        cls,
        message,
        scrub=scrub,
        status_code=status,
        method=method,
        path=path,
        retry_after=(
            regain_seconds(headers, regain_unit_seconds, accounts, max_wait)
            if cls is GraphThrottledError
            else None
        ),
        **fields,
    )


def ambiguous_from(error: GraphAPIError) -> GraphAmbiguousError:
    """The :class:`GraphAmbiguousError` for an uncertain answer to a call that is not repeatable.

    Keeps Graph's fields (code, subcode, HTTP status...) so callers can still tell what happened.
    """
    return GraphAmbiguousError(
        f"{error.message} (this call is not repeatable and may or may not have taken effect, "
        "so it was not resent: check before retrying)",
        code=error.code,
        error_subcode=error.error_subcode,
        type=error.type,
        is_transient=error.is_transient,
        fbtrace_id=error.fbtrace_id,
        status_code=error.status_code,
        error_user_title=error.error_user_title,
        error_user_msg=error.error_user_msg,
        method=error.method,
        path=error.path,
    )


def make_error(
    cls: type[GraphAPIError],
    message: str,
    *,
    scrub: Callable[[Any], str],
    retry_after: float | None = None,
    **fields: Any,
) -> GraphAPIError:
    """Build a typed error with every text field scrubbed."""
    for name in ("error_user_title", "error_user_msg", "path", "fbtrace_id", "type"):
        if fields.get(name) is not None:
            fields[name] = scrub(fields[name])
    if issubclass(cls, GraphThrottledError):
        return cls(scrub(message), retry_after=retry_after, **fields)
    return cls(scrub(message), **fields)


# --------------------------------------------------------------------------------------------------
# Pagination step
# --------------------------------------------------------------------------------------------------


def page_items(page: Any, where: str) -> list[Any]:
    """The ``data`` list of a paged answer (GraphAPIError if the answer is not a page)."""
    if not isinstance(page, Mapping) or not isinstance(page.get("data", []), list):
        raise GraphAPIError(
            f"expected a paged answer with a 'data' list from {where}, got {type(page).__name__}"
        )
    return list(page.get("data") or [])


def next_page_params(page: Any, params: Mapping[str, str]) -> dict[str, str] | None:
    """Params of the next page, or None at the end.

    The end is the absence of ``paging.next`` (an empty page with ``next`` continues). The next
    page follows ``paging.cursors.after``; the ``next`` URL (which may carry the token) is only
    parsed, credentials dropped, when there is no cursor (offset paging, or an empty page that
    repeats the same request). Params equal to the current ones come back as they are: the caller
    (:class:`PageWalker`) decides whether that is a stall.
    """
    paging = page.get("paging") if isinstance(page, Mapping) else None
    if not isinstance(paging, Mapping) or not paging.get("next"):
        return None
    cursors = paging.get("cursors")
    after = cursors.get("after") if isinstance(cursors, Mapping) else None
    nxt: dict[str, str] = dict(params)
    if after:
        nxt.pop("offset", None)
        nxt["after"] = str(after)
    else:
        _, query = split_path(str(paging["next"]))
        nxt.update(query)
    return nxt


class PageWalker:
    """The pagination step shared by both hooks' ``paginate``.

    ``walker.params`` is what to request next (None when done); :meth:`step` takes the page just
    read and returns its items. An empty page that repeats the same request is followed (Graph may
    answer an empty page with a ``next``), at most ``max_stalls`` times in a row; a non-empty page
    that does not advance is an error (it would loop forever, duplicating items).
    """

    def __init__(self, params: Mapping[str, str], where: str, max_stalls: int = 10) -> None:
        self.params: dict[str, str] | None = dict(params)
        self.where = where
        self.max_stalls = max_stalls
        self.stalls = 0
        self.pages = 0

    def step(self, page: Any) -> list[Any]:
        assert self.params is not None
        items = page_items(page, self.where)
        self.pages += 1
        nxt = next_page_params(page, self.params)
        if nxt is not None and nxt == self.params:
            self.stalls += 1
            if items or self.stalls > self.max_stalls:
                raise GraphAPIError(
                    f"pagination of {self.where} did not advance after page {self.pages} (same cursor again)"
                )
        else:
            self.stalls = 0
        self.params = nxt
        return items


def strip_link_credentials(url: str) -> str:
    """A paging link without ``access_token`` / ``appsecret_proof`` / ``appsecret_time``."""
    parts = urlsplit(url)
    if not parts.query:
        return url
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in AUTH_FIELDS]
    return parts._replace(query=urlencode(query)).geturl()


def clean_paging(body: Any) -> Any:
    """Remove credentials from ``paging.next`` / ``paging.previous`` of an answer, in place.

    Graph puts the token in these links; nothing the hook returns (and callers might log) keeps it.
    The cleaned link still works with :meth:`GraphHook.get` (auth goes in the header).
    """
    paging = body.get("paging") if isinstance(body, dict) else None
    if isinstance(paging, dict):
        for key in ("next", "previous"):
            link = paging.get(key)
            if isinstance(link, str) and link:
                paging[key] = strip_link_credentials(link)
    return body


# --------------------------------------------------------------------------------------------------
# High-level helpers (shared by both hooks)
# --------------------------------------------------------------------------------------------------

DEFAULT_SET_FIELDS = ("id", "name", "is_completed", *SET_COUNT_FIELDS)


def fields_param(fields: str | Iterable[str] | None, default: Sequence[str] | None = None) -> str | None:
    if fields is None:
        return ",".join(default) if default else None
    if isinstance(fields, str):
        return fields
    items = [str(f).strip() for f in fields if str(f).strip()]
    return ",".join(dict.fromkeys(items)) or None


def chunks(items: Sequence[str], size: int = MULTI_ID_CHUNK) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def unique_ids(ids: str | Iterable[Any]) -> list[str]:
    """One id or many, as a de-duplicated list of non-empty strings (order kept)."""
    items = [ids] if isinstance(ids, str | int) else list(ids)
    out: list[str] = []
    for item in items:
        text = str(item).strip()
        if not text:
            raise GraphInputError(f"empty object id in {items!r}")
        if text not in out:
            out.append(text)
    return out


def ad_account_path(ad_account_id: str | int) -> str:
    text = str(ad_account_id).strip()
    if not text:
        raise GraphInputError("ad_account_id is empty")
    return text if text.startswith("act_") else f"act_{text}"


def is_success(result: Any) -> bool:
    """Graph answers ``true`` or ``{"success": true}`` for updates and deletes."""
    if isinstance(result, bool):
        return result
    if isinstance(result, Mapping):
        return bool(result.get("success"))
    return False


def status_param(statuses: Any) -> str | None:
    from airflow_fb_async.hooks.statuses import normalize_statuses

    try:
        normalized = normalize_statuses(statuses)
    except ValueError as exc:
        raise GraphInputError(str(exc)) from None
    return ",".join(normalized) if normalized else None


NOTIFICATION_MODES = ("OFF", "ON_COMPLETE")


def update_set_data(
    name: str | None, notification_uri: str | None, notification_mode: str | None
) -> dict[str, str]:
    data: dict[str, str] = {}
    if name is not None:
        data["name"] = str(name)
    if notification_uri is not None:
        data["notification_uri"] = str(notification_uri)
    if notification_mode is not None:
        mode = str(notification_mode).strip().upper()
        if mode not in NOTIFICATION_MODES:
            raise GraphInputError(
                f"notification_mode must be one of {NOTIFICATION_MODES}, got {notification_mode!r}"
            )
        data["notification_mode"] = mode
    if not data:
        raise GraphInputError(
            "update_request_set needs at least one of name, notification_uri, notification_mode"
        )
    return data


# --------------------------------------------------------------------------------------------------
# One call: request building, response handling, retry decision
# --------------------------------------------------------------------------------------------------


@dataclass
class HttpRequest:
    """What a client must send (both clients accept these shapes)."""

    method: str
    url: str
    params: dict[str, str]
    headers: dict[str, str]
    data: dict[str, str] | None
    files: dict[str, FileSpec] | None
    timeout: float


@dataclass
class Outcome:
    """Result of one attempt: ``done`` with ``value``, or an ``error`` with the delay before the next
    attempt (``delay`` None: raise ``error`` now)."""

    done: bool
    value: Any = None
    error: GraphAPIError | None = None
    delay: float | None = None


class GraphCore:
    """Per-connection sans-IO state: config, scrubber, retry policy, throttle view, ETag cache."""

    def __init__(
        self,
        config: GraphConfig,
        *,
        rng: Callable[[float, float], float] | None = None,
        clock: Callable[[], float] = time.time,
        etag_cache: EtagCache | None = None,
    ) -> None:
        self.config = config
        self.scrub = Scrubber([config.token, config.app_secret])
        policy_kwargs: dict[str, Any] = {"rng": rng} if rng is not None else {}
        self.policy = RetryPolicy(
            max_retries=config.max_retries,
            backoff_base=config.backoff_base,
            backoff_max=config.backoff_max,
            max_wait=config.max_throttle_wait,
            **policy_kwargs,
        )
        self.throttle = ThrottleState(
            regain_unit_seconds=config.regain_unit_seconds,
            throttle_threshold=config.throttle_threshold,
            backoff_base=config.backoff_base,
            backoff_max=config.backoff_max,
            max_wait=config.max_throttle_wait,
        )
        self.etags = etag_cache if etag_cache is not None else EtagCache()
        self.clock = clock

    def new_call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        data: Mapping[str, Any] | str | None = None,
        files: Mapping[str, Any] | None = None,
        etag: bool | str | None = None,
        idempotent: bool | None = None,
        raise_codes: Collection[int] = frozenset(),
        max_retries: int | None = None,
        timeout: float | None = None,
    ) -> GraphCall:
        return GraphCall(
            self,
            method,
            path,
            params=params,
            data=data,
            files=files,
            etag=etag,
            idempotent=idempotent,
            raise_codes=raise_codes,
            max_retries=max_retries,
            timeout=timeout,
        )

    def require_token(self) -> None:
        if not self.config.token:
            raise GraphAuthError(
                f"connection {self.config.conn_id!r} has no access token (set its password)",
            )


class GraphCall:
    """The state of one logical Graph call across its attempts."""

    def __init__(
        self,
        core: GraphCore,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None,
        data: Mapping[str, Any] | str | None,
        files: Mapping[str, Any] | None,
        etag: bool | str | None,
        idempotent: bool | None,
        raise_codes: Collection[int],
        max_retries: int | None,
        timeout: float | None,
    ) -> None:
        core.require_token()
        self.core = core
        self.method = str(method).upper().strip()
        if not self.method.isalpha():
            raise GraphInputError(f"bad HTTP method {method!r}")
        self.path, path_params = split_path(path)
        self.params = {**path_params, **encode_fields(params)}
        for name in AUTH_FIELDS & self.params.keys():
            del self.params[name]
        self.data = encode_fields(data) if (data is not None or files) else None
        if self.data is not None:
            for name in AUTH_FIELDS & self.data.keys():
                del self.data[name]
        self.files = normalize_files(files)
        scrub = core.scrub
        if scrub(self.path) != self.path or any(
            scrub(f"{k}={v}") != f"{k}={v}" for k, v in self.params.items()
        ):
            # A URL is logged by the HTTP libraries themselves (urllib3 debug lines): refuse it.
            raise GraphInputError(
                f"refusing to put a credential in the URL of {self.method} /{scrub(self.path)}: "
                "the access token belongs in the connection, not in the path or params"
            )
        if self.method in {"GET", "DELETE"} and (self.data or self.files):
            raise GraphInputError(f"{self.method} takes no body (use params)")
        self.idempotent = is_repeatable(self.method, self.path) if idempotent is None else bool(idempotent)
        self.raise_codes = frozenset(raise_codes or ())
        self.max_retries = max_retries
        self.timeout = core.config.timeout if timeout is None else timeout
        self.url = f"{core.config.base_url}/{self.path}"
        self.where = core.scrub(f"{self.method} /{self.path}")  # goes into every log line
        batch_text = self.data.get("batch") if self.data else None
        self.accounts = accounts_in(self.path, self.params.get("ids"), batch_text)
        self.etag_mode = etag if etag not in (None, False, "") else None
        self.cache_key = EtagCache.key(self.method, self.url, self.params) if self.etag_mode else None
        self.sent_etag: str | None = None
        self.attempts = 0
        self.failures = 0
        self._started = 0.0

    # -- before each attempt --------------------------------------------------------------------

    def throttle_pause(self) -> float:
        """Seconds to wait before the next attempt (blocked / near-limit accounts); logs it."""
        pause, reason = self.core.throttle.wait_time(self.accounts)
        if pause > 0:
            log.info("Throttle pause %.2fs before %s (%s)", pause, self.where, reason)
        return pause

    def build(self) -> HttpRequest:
        """The next attempt's request: auth header, appsecret proof, If-None-Match, token in the body
        of the root POST (standard batch)."""
        self.attempts += 1
        cfg = self.core.config
        headers = {
            "Authorization": f"OAuth {cfg.token}",
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
        }
        auth_fields: dict[str, str] = {}
        if cfg.app_secret:
            if cfg.appsecret_time:
                stamp = int(self.core.clock())
                auth_fields["appsecret_proof"] = appsecret_proof(cfg.app_secret, cfg.token, stamp)
                auth_fields["appsecret_time"] = str(stamp)
            else:
                auth_fields["appsecret_proof"] = appsecret_proof(cfg.app_secret, cfg.token)
        params = dict(self.params)
        data = dict(self.data) if self.data is not None else None
        if self.method == "POST":
            data = data if data is not None else {}
            data.update(auth_fields)
            if self.path == "":
                data["access_token"] = cfg.token
        else:
            params.update(auth_fields)
        self.sent_etag = None
        if self.cache_key is not None:
            if isinstance(self.etag_mode, str):
                self.sent_etag = self.etag_mode
            else:
                cached = self.core.etags.get(self.cache_key)
                self.sent_etag = cached[0] if cached else None
            if self.sent_etag:
                headers["If-None-Match"] = self.sent_etag
        self._started = time.monotonic()
        return HttpRequest(
            method=self.method,
            url=self.url,
            params=params,
            headers=headers,
            data=data,
            files=self.files,
            timeout=self.timeout,
        )

    # -- after each attempt ---------------------------------------------------------------------

    def _elapsed_ms(self) -> float:
        return (time.monotonic() - self._started) * 1000.0

    def on_response(self, status: int, headers: Mapping[str, Any], content: bytes) -> Outcome:
        ms = self._elapsed_ms()
        log.debug("Graph %s -> %s in %.0f ms (attempt %d)", self.where, status, ms, self.attempts)
        self.core.throttle.observe(headers, self.accounts[0] if len(self.accounts) == 1 else None)
        if status == 304 and self.cache_key is not None:
            cached = self.core.etags.get(self.cache_key)
            if cached is not None and cached[0] == self.sent_etag:
                return Outcome(done=True, value=cached[1])
            # A 304 for an ETag whose body we never saw: ask again, unconditionally.
            log.debug("Graph %s: 304 without a cached body, fetching again", self.where)
            self.etag_mode = None
            self.cache_key = None
            return Outcome(done=False, delay=0.0)
        if 200 <= status < 300:
            try:
                body = parse_json_body(content)
            except ValueError:
                err = make_error(
                    GraphAPIError,
                    "answer is not JSON",
                    scrub=self.core.scrub,
                    status_code=status,
                    method=self.method,
                    path=self.path,
                )
                return Outcome(done=False, error=err, delay=None)
            if not (isinstance(body, Mapping) and isinstance(body.get("error"), Mapping) and len(body) == 1):
                clean_paging(body)
                if self.cache_key is not None:
                    etag_header = _header(headers, "etag")
                    if etag_header:
                        self.core.etags.put(self.cache_key, etag_header, body)
                return Outcome(done=True, value=body)
        error = error_from_response(
            status,
            headers,
            content,
            method=self.method,
            path=self.path,
            scrub=self.core.scrub,
            regain_unit_seconds=self.core.config.regain_unit_seconds,
            accounts=self.accounts,
            max_wait=self.core.config.max_throttle_wait,
        )
        if not self.idempotent and isinstance(error, GraphTransientError):
            # A 5xx / code 1 / code 2 / is_transient answer does not prove that a create did not
            # happen (Graph may have committed it before failing): never resend it blindly.
            error = ambiguous_from(error)
        return self._decide(error)

    def on_transport_error(self, exc: BaseException, *, sent: bool) -> Outcome:
        """A failure without an answer. ``sent``: the request may have reached Graph."""
        ms = self._elapsed_ms()
        summary = self.core.scrub(f"{type(exc).__name__}: {exc}")
        log.debug(
            "Graph %s -> no answer after %.0f ms (attempt %d): %s", self.where, ms, self.attempts, summary
        )
        if not sent:
            cls: type[GraphAPIError] = GraphTransientError
            message = f"connection failed before the request was sent: {summary}"
        elif self.idempotent:
            cls = GraphTransientError
            message = f"connection lost after the request was sent (idempotent, safe to retry): {summary}"
        else:
            cls = GraphAmbiguousError
            message = (
                "connection lost after the request was sent; it may or may not have taken effect "
                f"(not resent): {summary}"
            )
        error = make_error(cls, message, scrub=self.core.scrub, method=self.method, path=self.path)
        return self._decide(error)

    def _decide(self, error: GraphAPIError) -> Outcome:
        self.failures += 1
        delay = self.core.policy.delay_for(
            error, self.failures, raise_codes=self.raise_codes, max_retries=self.max_retries
        )
        if delay is not None:
            limit = self.core.policy.max_retries if self.max_retries is None else self.max_retries
            log.info(
                "Retrying %s in %.2fs (retry %d/%d) after: %s",
                self.where,
                delay,
                self.failures,
                limit,
                error,
            )
        elif self.failures > 1:
            log.warning("Giving up on %s after %d attempts: %s", self.where, self.attempts, error)
        return Outcome(done=False, error=error, delay=delay)


def _header(headers: Mapping[str, Any], name: str) -> str | None:
    getter = getattr(headers, "get", None)
    value = getter(name) if getter else None
    if value is None:
        lowered = name.lower()
        for key, val in headers.items():
            if str(key).lower() == lowered:
                return str(val)
        return None
    return str(value)
