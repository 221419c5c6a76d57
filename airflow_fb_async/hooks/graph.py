"""Hooks for the Facebook Graph / Marketing API: :class:`GraphHook` (sync, ``requests``) and
:class:`GraphAsyncHook` (async, ``httpx``, for triggers).

Both run the same sans-IO core (:mod:`airflow_fb_async.hooks._core`): one connection parsing
path, one request builder (token in ``Authorization: OAuth``, ``appsecret_proof``), one error
parser, one retry policy, one process-wide throttle state and one pagination step. They only differ
in the HTTP client and in how they sleep.

Secrets: the token travels in a header (and, for the standard batch ``POST /``, in the form body),
never in a URL; it is registered with Airflow's secret masker, and every exception message and log
line of this package passes through :meth:`GraphHook.scrub`.
"""

from __future__ import annotations

import asyncio
import functools
import socket
import ssl
import threading
import time
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Collection,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from typing import TYPE_CHECKING, Any, ClassVar

import certifi
import httpx
import requests
import urllib3.exceptions
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry
from urllib3.util.ssl_match_hostname import CertificateError as HostnameMismatchError

from airflow_fb_async._compat import (
    BaseHook,
    amask_secret,
    get_async_connection,
    get_async_extra_dejson,
    mask_secret,
)
from airflow_fb_async.exceptions import FacebookGraphError, GraphAPIError, GraphInputError
from airflow_fb_async.hooks import connection_form
from airflow_fb_async.hooks._core import (
    CONN_TYPE,
    DEFAULT_CONN_ID,
    DEFAULT_SET_FIELDS,
    MULTI_ID_CHUNK,
    GraphCall,
    GraphConfig,
    GraphCore,
    HttpRequest,
    Outcome,
    PageWalker,
    ad_account_path,
    chunks,
    encode_fields,
    fields_param,
    install_library_log_filter,
    is_success,
    make_error,
    parse_conn_config,
    split_path,
    status_param,
    unique_ids,
    update_set_data,
)
from airflow_fb_async.hooks.batch import run_batch
from airflow_fb_async.hooks.encoding import FORM_CONTENT_TYPE, encode_form
from airflow_fb_async.hooks.insights import AsyncInsightsMixin, InsightsMixin

if TYPE_CHECKING:
    from types import TracebackType

    from airflow_fb_async._compat import Connection
    from airflow_fb_async.hooks.batch_journal import BatchJournal
    from airflow_fb_async.hooks.throttle import ThrottleState

__all__ = ["GraphAsyncHook", "GraphHook"]

HOOK_NAME = "Facebook Graph API"

# urllib3 and httpx log request URLs; appsecret_proof rides in the query of GET/DELETE calls.
install_library_log_filter()


def _mask(config: GraphConfig) -> None:
    """Register the secrets with Airflow's masker (task logs, supervisor)."""
    for secret in (config.token, config.app_secret):
        if secret:
            mask_secret(secret)


async def _amask(config: GraphConfig) -> None:
    for secret in (config.token, config.app_secret):
        if secret:
            await amask_secret(secret)


def _config_from_conn(conn: Connection, extra: Mapping[str, Any], api_version: str | None) -> GraphConfig:
    return parse_conn_config(
        conn.conn_id,
        host=conn.host,
        password=conn.password,
        extra=extra,
        schema=conn.schema,
        port=conn.port,
        api_version=api_version,
    )


def _paginate_start(
    path: str, params: Mapping[str, Any] | None, page_size: int | None, default_page_size: int
) -> tuple[str, dict[str, str]]:
    base_path, query = split_path(path)
    query.update(encode_fields(params))
    if page_size is not None:
        if int(page_size) < 1:
            raise GraphInputError(f"page_size must be >= 1, got {page_size!r}")
        query["limit"] = str(int(page_size))
    else:
        query.setdefault("limit", str(default_page_size))
    return base_path, query


def _exception_chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception, its causes/contexts, and exceptions nested in args / ``reason``."""
    seen: set[int] = set()
    stack: list[BaseException] = [exc]
    while stack:
        cur = stack.pop()
        if id(cur) in seen:
            continue
        seen.add(id(cur))
        yield cur
        nested = [cur.__cause__, cur.__context__, getattr(cur, "reason", None), *cur.args]
        stack.extend(e for e in nested if isinstance(e, BaseException))


_BEFORE_SEND_REQUESTS = (
    urllib3.exceptions.NewConnectionError,  # includes NameResolutionError (DNS)
    urllib3.exceptions.ConnectTimeoutError,
    urllib3.exceptions.ProxyError,
    socket.gaierror,
    ConnectionRefusedError,
)


def _ssl_handshake_failed(exc: BaseException) -> bool:
    """True when an SSL error in the chain comes from the TLS handshake (before any request byte).

    urllib3 wraps *every* ``ssl.SSLError`` in its ``SSLError`` (and requests in its own), whether it
    was raised by the handshake or while reading the answer to a request already sent (a TLS alert,
    a bad record MAC mid-response). Only the first is safe to resend: tell them apart by a
    certificate error or by where the ``ssl`` error was raised.
    """
    for err in _exception_chain(exc):
        if isinstance(err, ssl.SSLCertVerificationError | HostnameMismatchError):
            return True
        if isinstance(err, ssl.SSLError):
            tb = err.__traceback__
            while tb is not None:
                if tb.tb_frame.f_code.co_name == "do_handshake":
                    return True
                tb = tb.tb_next
    return False


def requests_failed_before_send(exc: BaseException) -> bool:
    """True when a ``requests`` failure happened before the request left (safe to resend).

    ``requests`` wraps both sides in ``ConnectionError``: ``ConnectionError(MaxRetryError(
    NewConnectionError))`` is before, ``ConnectionError(ProtocolError(RemoteDisconnected))`` after.
    An ``SSLError`` is before only when it comes from the TLS handshake.
    """
    if isinstance(exc, requests.exceptions.ConnectTimeout | requests.exceptions.ProxyError):
        return True
    if isinstance(exc, requests.exceptions.SSLError) and _ssl_handshake_failed(exc):
        return True
    return any(isinstance(e, _BEFORE_SEND_REQUESTS) for e in _exception_chain(exc))


_BEFORE_SEND_HTTPX = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.ProxyError)


def httpx_failed_before_send(exc: BaseException) -> bool:
    """True when an ``httpx`` failure happened before the request left (safe to resend)."""
    return isinstance(exc, _BEFORE_SEND_HTTPX)


def _files_arg(files: Mapping[str, tuple[str, bytes, str | None]] | None) -> dict[str, Any] | None:
    """Multipart parts in the shape both clients take: ``(filename, bytes[, content_type])``."""
    if not files:
        return None
    return {k: (n, b, t) if t else (n, b) for k, (n, b, t) in files.items()}


def _keep_headers(request: requests.PreparedRequest) -> requests.PreparedRequest:
    """A requests auth that changes nothing (see ``GraphHook.get_conn``)."""
    return request


class _GraphHookBase(BaseHook):
    """What both hooks share: connection attributes, config, scrubbing, high-level param building."""

    conn_name_attr = "graph_conn_id"
    default_conn_name = DEFAULT_CONN_ID
    conn_type = CONN_TYPE
    hook_name = HOOK_NAME
    multi_id_chunk: ClassVar[int] = MULTI_ID_CHUNK

    def __init__(
        self,
        graph_conn_id: str = DEFAULT_CONN_ID,
        api_version: str | None = None,
        *,
        rng: Callable[[float, float], float] | None = None,
        logger_name: str | None = None,
    ) -> None:
        super().__init__(logger_name=logger_name)
        self.graph_conn_id = graph_conn_id
        self._api_version_override = api_version
        self._rng = rng
        self._core: GraphCore | None = None

    def _make_core(self, config: GraphConfig) -> GraphCore:
        return GraphCore(config, rng=self._rng)

    @property
    def _ready_core(self) -> GraphCore:
        if self._core is None:
            raise FacebookGraphError(
                f"{type(self).__name__}: connection {self.graph_conn_id!r} not loaded yet "
                "(await a call first, or use `async with`)"
            )
        return self._core

    # Both hooks expose these once the connection is loaded (the sync hook loads it on demand).
    @property
    def config(self) -> GraphConfig:
        return self._ready_core.config

    @property
    def api_version(self) -> str:
        return self.config.api_version

    @property
    def base_url(self) -> str:
        return self.config.base_url

    @property
    def throttle(self) -> ThrottleState:
        """The process-wide throttle state, viewed with this connection's knobs."""
        return self._ready_core.throttle

    def scrub(self, text: Any) -> str:
        """``text`` without the token (raw / URL-encoded), the app secret, or any
        ``access_token=`` / ``appsecret_proof=`` value."""
        return self._ready_core.scrub(text)

    @staticmethod
    def _multi_id_calls(
        set_ids: str | Iterable[Any],
        fields: str | Iterable[str] | None,
        default_fields: Sequence[str] | None = DEFAULT_SET_FIELDS,
    ) -> Iterator[dict[str, str]]:
        ids = unique_ids(set_ids)
        field_text = fields_param(fields, default_fields)
        for chunk in chunks(ids, MULTI_ID_CHUNK):
            params = {"ids": ",".join(chunk)}
            if field_text:
                params["fields"] = field_text
            yield params

    @staticmethod
    def _check_multi(result: Any, where: str) -> dict[str, dict[str, Any]]:
        if not isinstance(result, Mapping):
            raise GraphAPIError(f"expected an object keyed by id from {where}, got {type(result).__name__}")
        return {str(k): v for k, v in result.items()}


# ==================================================================================================
# Sync hook
# ==================================================================================================


class GraphHook(InsightsMixin, _GraphHookBase):
    """Sync Facebook Graph API hook over a pooled ``requests.Session``.

    :param graph_conn_id: Airflow connection id (conn type ``facebook_graph``).
    :param api_version: overrides the connection's ``api_version`` extra (default ``v25.0``).
    :param sleep: injectable sleep function (tests use a fake clock).
    :param rng: injectable ``uniform(a, b)`` for the backoff jitter.
    """

    # The connection form of Airflow 2.x, 3.0 and 3.1 (3.2+ reads the provider info instead).
    get_connection_form_widgets = staticmethod(connection_form.get_connection_form_widgets)
    get_ui_field_behaviour = staticmethod(connection_form.get_ui_field_behaviour)

    def __init__(
        self,
        graph_conn_id: str = DEFAULT_CONN_ID,
        api_version: str | None = None,
        *,
        sleep: Callable[[float], None] | None = None,
        rng: Callable[[float, float], float] | None = None,
        pool_maxsize: int = 16,
        logger_name: str | None = None,
    ) -> None:
        super().__init__(graph_conn_id, api_version, rng=rng, logger_name=logger_name)
        self._sleep: Callable[[float], None] = sleep or time.sleep
        self._pool_maxsize = pool_maxsize
        self._session: requests.Session | None = None
        self._lock = threading.Lock()

    # -- connection and session -------------------------------------------------------------------

    @property
    def core(self) -> GraphCore:
        """The sans-IO core; loads the connection on first use (thread-safe)."""
        if self._core is None:
            with self._lock:
                if self._core is None:
                    conn = self.get_connection(self.graph_conn_id)
                    config = _config_from_conn(conn, conn.extra_dejson, self._api_version_override)
                    _mask(config)
                    self._core = self._make_core(config)
        return self._core

    @property
    def _ready_core(self) -> GraphCore:
        return self.core

    def get_conn(self) -> requests.Session:
        """The pooled session (created on first use; urllib3 never resends by itself)."""
        if self._session is None:
            with self._lock:
                if self._session is None:
                    session = requests.Session()
                    # The token travels in the Authorization header the core sets. Without an auth
                    # of its own, requests would apply a ~/.netrc entry for the host as Basic auth
                    # and overwrite that header; a no-op auth keeps netrc out.
                    session.auth = _keep_headers
                    # total=0 and read=False: urllib3 must never resend on its own. The retry
                    # policy above decides, knowing whether the request may have taken effect.
                    adapter = HTTPAdapter(
                        pool_connections=4,
                        pool_maxsize=self._pool_maxsize,
                        max_retries=Retry(total=0, connect=0, read=False, redirect=0, status=0),
                    )
                    session.mount("https://", adapter)
                    session.mount("http://", adapter)
                    self._session = session
        return self._session

    def close(self) -> None:
        with self._lock:
            if self._session is not None:
                self._session.close()
                self._session = None

    def __enter__(self) -> GraphHook:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- the retry loop -------------------------------------------------------------------------

    def _send(self, call: GraphCall, req: HttpRequest) -> Outcome:
        session = self.get_conn()
        data: dict[str, str] | bytes | None = req.data
        headers = req.headers
        if req.data and not req.files:
            # Pre-encoded: the same bytes requests would build, without its per-byte quoting.
            data = encode_form(req.data)
            headers = {**headers, "Content-Type": FORM_CONTENT_TYPE}
        try:
            resp = session.request(
                req.method,
                req.url,
                params=req.params or None,
                data=data,
                files=_files_arg(req.files),
                headers=headers,
                timeout=req.timeout,
            )
            content = resp.content
        except (
            requests.exceptions.ConnectionError,
            requests.exceptions.Timeout,
            requests.exceptions.ChunkedEncodingError,
            requests.exceptions.ContentDecodingError,
        ) as exc:
            return call.on_transport_error(exc, sent=not requests_failed_before_send(exc))
        except requests.exceptions.RequestException as exc:
            scrub = call.core.scrub
            err = make_error(
                GraphAPIError,
                f"request could not be made: {type(exc).__name__}: {exc}",
                scrub=scrub,
                method=call.method,
                path=call.path,
            )
            return Outcome(done=False, error=err, delay=None)
        return call.on_response(resp.status_code, resp.headers, content)

    def request(
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
    ) -> Any:
        """One Graph call with the retry policy; returns the parsed JSON (None for an empty body).

        :param path: relative to ``{host}/{api_version}/`` (``""`` is the root).
        :param params: query parameters (lists/dicts are JSON-encoded, bools lower case).
        :param data: form fields of a POST; ``files``: multipart parts (bytes, file or tuple).
        :param etag: ``True``: conditional GET from the hook's ETag cache; a string: send that ETag.
            Either way the data is returned (the cached body on 304).
        :param idempotent: safe to resend after an uncertain outcome (no answer once sent, 5xx,
            codes 1 / 2, ``is_transient``). Default :func:`~.retry.is_repeatable`: reads, DELETE
            and an update ``POST <id>`` yes; a create ``POST <parent>/<edge>`` and the root
            ``POST /`` no. When not, such an outcome raises :class:`GraphAmbiguousError`.
        :param raise_codes: Graph error codes raised at once, without retry.
        :param max_retries: overrides the connection's ``max_retries`` for this call.
        :param timeout: overrides the connection's ``timeout`` (seconds) for this call.
        :raises GraphAPIError: (a typed subclass) when Graph answers an error or retries run out.
        """
        call = self.core.new_call(
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
        while True:
            pause = call.throttle_pause()
            if pause > 0:
                self._sleep(pause)
            outcome = self._send(call, call.build())
            if outcome.done:
                return outcome.value
            if outcome.delay is None:
                assert outcome.error is not None
                raise outcome.error
            if outcome.delay > 0:
                self._sleep(outcome.delay)

    def get(self, path: str, params: Mapping[str, Any] | None = None, etag: bool | str | None = None) -> Any:
        return self.request("GET", path, params=params, etag=etag)

    def post(
        self,
        path: str,
        data: Mapping[str, Any] | str | None = None,
        files: Mapping[str, Any] | None = None,
        idempotent: bool | None = None,
    ) -> Any:
        """``POST path``. ``idempotent`` (default: an update ``POST <id>`` yes, a create on an edge
        no) says whether it may be resent after an uncertain outcome; when not, such an outcome
        raises :class:`GraphAmbiguousError` instead."""
        return self.request("POST", path, data=data, files=files, idempotent=idempotent)

    def delete(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        return self.request("DELETE", path, params=params)

    def paginate(
        self, path: str, params: Mapping[str, Any] | None = None, page_size: int | None = None
    ) -> Iterator[dict[str, Any]]:
        """Yield every item of a paged edge, following ``paging.cursors.after`` until no ``next``."""
        base_path, query = _paginate_start(path, params, page_size, self.core.config.page_size)
        walker = PageWalker(query, f"GET /{base_path}")
        while walker.params is not None:
            yield from walker.step(self.request("GET", base_path, params=walker.params))

    # -- standard and async batches (engines live in their own modules) ---------------------------

    def batch(
        self,
        requests: list[dict[str, Any]],
        include_headers: bool = True,
        files: Mapping[str, Any] | None = None,
        max_concurrency: int = 4,
        *,
        journal: BatchJournal | None = None,
        **options: Any,
    ) -> list[dict[str, Any]]:
        """Standard batch of any size; one ``{"code", "headers", "body"}`` per request, in order.

        ``journal`` (``load()`` / ``save(state)``) keeps the run's state so that a later try sends
        only what is not settled; see :mod:`airflow_fb_async.hooks.batch_journal`. Raises
        :class:`GraphBatchError` (with ``results`` and ``cause``) when the batch cannot go on.
        """
        return run_batch(
            self,
            requests,
            include_headers=include_headers,
            files=files,
            max_concurrency=max_concurrency,
            journal=journal,
            **options,
        )

    def create_async_batch(
        self,
        ad_account_id: str,
        requests: list[dict[str, Any]],
        name: str,
        notification_uri: str | None = None,
        notification_mode: str | None = None,
        idempotency_key: str | None = None,
        **options: Any,
    ) -> list[str]:
        """Create async request set(s) on an ad account; returns the set ids.

        Calls with the same ``idempotency_key`` on the same account return the same sets and never
        create them twice (also when a create's answer was lost); without one every call creates
        new sets (see :mod:`airflow_fb_async.hooks.request_sets`).
        """
        from airflow_fb_async.hooks.request_sets import create_request_sets

        return create_request_sets(
            self,
            ad_account_id,
            requests,
            name,
            notification_uri=notification_uri,
            notification_mode=notification_mode,
            idempotency_key=idempotency_key,
            **options,
        )

    # -- async request sets -----------------------------------------------------------------------

    def get_request_set(self, set_id: str, fields: str | Iterable[str] | None = None) -> dict[str, Any]:
        params = {"fields": fields_param(fields, DEFAULT_SET_FIELDS)}
        result = self.request("GET", str(set_id).strip(), params=params)
        if not isinstance(result, dict):
            raise GraphAPIError(f"expected an object from GET /{set_id}, got {type(result).__name__}")
        return result

    def get_objects(
        self, ids: str | Iterable[str], fields: str | Iterable[str] | None = None
    ) -> dict[str, dict[str, Any]]:
        """Read any objects with multi-id ``GET /?ids=`` (50 per call): ``{id: fields}``.

        Without ``fields`` each object answers Graph's default fields for its kind.
        """
        out: dict[str, dict[str, Any]] = {}
        for params in self._multi_id_calls(ids, fields, default_fields=None):
            out.update(self._check_multi(self.request("GET", "", params=params), "GET /?ids="))
        return out

    def get_request_sets(
        self, set_ids: str | Iterable[str], fields: str | Iterable[str] | None = None
    ) -> dict[str, dict[str, Any]]:
        """Read many request sets with multi-id ``GET /?ids=`` (50 per call): ``{set_id: fields}``.

        ``fields`` defaults to the name, ``is_completed`` and every count.
        """
        return self.get_objects(set_ids, fields_param(fields, DEFAULT_SET_FIELDS))

    def list_requests(
        self,
        set_id: str,
        statuses: str | Iterable[str] | None = None,
        fields: str | Iterable[str] | None = None,
        page_size: int | None = None,
    ) -> Iterator[dict[str, Any]]:
        """The requests of a set (``GET <set_id>/requests``), optionally filtered by status."""
        params = {"status": status_param(statuses), "fields": fields_param(fields)}
        return self.paginate(f"{str(set_id).strip()}/requests", params, page_size=page_size)

    def list_request_sets(
        self, ad_account_id: str, is_completed: bool | None = None, fields: str | Iterable[str] | None = None
    ) -> Iterator[dict[str, Any]]:
        """Request sets of an ad account (``act_<id>/asyncadrequestsets``)."""
        params: dict[str, Any] = {"fields": fields_param(fields)}
        if is_completed is not None:
            params["is_completed"] = 1 if is_completed else 0
        return self.paginate(f"{ad_account_path(ad_account_id)}/asyncadrequestsets", params)

    def list_ad_set_requests(
        self,
        ad_set_id: str,
        statuses: str | Iterable[str] | None = None,
        fields: str | Iterable[str] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Async requests touching an ad set (``<ad_set_id>/asyncadrequests``)."""
        params = {"status": status_param(statuses), "fields": fields_param(fields)}
        return self.paginate(f"{str(ad_set_id).strip()}/asyncadrequests", params)

    def update_request_set(
        self,
        set_id: str,
        name: str | None = None,
        notification_uri: str | None = None,
        notification_mode: str | None = None,
    ) -> bool:
        """Update only the given fields of a set (``POST <set_id>``); True on success."""
        data = update_set_data(name, notification_uri, notification_mode)
        return is_success(self.request("POST", str(set_id).strip(), data=data, idempotent=True))

    def cancel(self, object_id: str) -> bool:
        """Cancel a request or a whole set (``DELETE <id>``); True on success."""
        return is_success(self.request("DELETE", str(object_id).strip()))

    # -- Airflow UI -------------------------------------------------------------------------------

    def test_connection(self) -> tuple[bool, str]:
        """``GET me?fields=id``; (ok, message), the message never holds the token."""
        try:
            result = self.request("GET", "me", params={"fields": "id"}, max_retries=1)
        except Exception as exc:
            text = f"{type(exc).__name__}: {exc}"
            try:
                text = self.scrub(text)
            except Exception:
                text = f"{type(exc).__name__}"
            return False, text
        ident = result.get("id") if isinstance(result, Mapping) else None
        return True, f"Connected to {self.base_url} as id {ident}"


# ==================================================================================================
# Async hook
# ==================================================================================================


@functools.cache
def _shared_ssl_context() -> ssl.SSLContext:
    """One verifying SSL context for every async client of the process (certifi's CA bundle)."""
    return ssl.create_default_context(cafile=certifi.where())


class GraphAsyncHook(AsyncInsightsMixin, _GraphHookBase):
    """Async Facebook Graph API hook over ``httpx.AsyncClient`` (for triggers).

    Reads its connection with ``await`` (no blocking call on the event loop). Use it as an async
    context manager, or call :meth:`aclose`.

    :param sleep: injectable coroutine sleep (default :func:`asyncio.sleep`).
    """

    def __init__(
        self,
        graph_conn_id: str = DEFAULT_CONN_ID,
        api_version: str | None = None,
        *,
        sleep: Callable[[float], Awaitable[Any]] | None = None,
        rng: Callable[[float, float], float] | None = None,
        max_connections: int = 16,
        logger_name: str | None = None,
    ) -> None:
        super().__init__(graph_conn_id, api_version, rng=rng, logger_name=logger_name)
        self._sleep: Callable[[float], Awaitable[Any]] = sleep or asyncio.sleep
        self._max_connections = max_connections
        self._client: httpx.AsyncClient | None = None

    async def aget_core(self) -> GraphCore:
        """The sans-IO core; reads the connection asynchronously on first use."""
        if self._core is None:
            conn = await get_async_connection(self.graph_conn_id, self)
            extra = await get_async_extra_dejson(conn)
            config = _config_from_conn(conn, extra, self._api_version_override)
            await _amask(config)
            if self._core is None:
                self._core = self._make_core(config)
        return self._core

    async def get_conn(self) -> httpx.AsyncClient:
        """The pooled async client (created on first use, in a worker thread: loading the CA bundle
        and building the client's transport block for tens of ms, which the event loop must not)."""
        core = await self.aget_core()
        if self._client is None:
            client = await asyncio.to_thread(self._new_client, core.config.timeout)
            if self._client is None:
                self._client = client
            else:
                await client.aclose()
        return self._client

    def _new_client(self, timeout: float) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            timeout=httpx.Timeout(timeout),
            follow_redirects=True,
            # With an explicit transport, httpx ignores the client's verify/limits: set them here.
            transport=httpx.AsyncHTTPTransport(
                retries=0,
                verify=_shared_ssl_context(),  # one CA bundle load per process
                limits=httpx.Limits(max_connections=self._max_connections, max_keepalive_connections=8),
            ),
        )

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def __aenter__(self) -> GraphAsyncHook:
        await self.aget_core()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def _send(self, call: GraphCall, req: HttpRequest) -> Outcome:
        client = await self.get_conn()
        try:
            resp = await client.request(
                req.method,
                req.url,
                params=req.params or None,
                data=req.data,
                files=_files_arg(req.files),
                headers=req.headers,
                timeout=req.timeout,
            )
            content = resp.content
        except (
            httpx.UnsupportedProtocol,
            httpx.LocalProtocolError,
            httpx.TooManyRedirects,
            httpx.InvalidURL,
        ) as exc:
            err = make_error(
                GraphAPIError,
                f"request could not be made: {type(exc).__name__}: {exc}",
                scrub=call.core.scrub,
                method=call.method,
                path=call.path,
            )
            return Outcome(done=False, error=err, delay=None)
        except (httpx.TransportError, httpx.DecodingError) as exc:
            return call.on_transport_error(exc, sent=not httpx_failed_before_send(exc))
        return call.on_response(resp.status_code, resp.headers, content)

    async def request(
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
    ) -> Any:
        """Async twin of :meth:`GraphHook.request` (same arguments, same retry policy)."""
        core = await self.aget_core()
        call = core.new_call(
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
        while True:
            pause = call.throttle_pause()
            if pause > 0:
                await self._sleep(pause)
            outcome = await self._send(call, call.build())
            if outcome.done:
                return outcome.value
            if outcome.delay is None:
                assert outcome.error is not None
                raise outcome.error
            if outcome.delay > 0:
                await self._sleep(outcome.delay)

    async def get(
        self, path: str, params: Mapping[str, Any] | None = None, etag: bool | str | None = None
    ) -> Any:
        return await self.request("GET", path, params=params, etag=etag)

    async def post(
        self,
        path: str,
        data: Mapping[str, Any] | str | None = None,
        files: Mapping[str, Any] | None = None,
        idempotent: bool | None = None,
    ) -> Any:
        """Async twin of :meth:`GraphHook.post`."""
        return await self.request("POST", path, data=data, files=files, idempotent=idempotent)

    async def delete(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        return await self.request("DELETE", path, params=params)

    async def paginate(
        self, path: str, params: Mapping[str, Any] | None = None, page_size: int | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        core = await self.aget_core()
        base_path, query = _paginate_start(path, params, page_size, core.config.page_size)
        walker = PageWalker(query, f"GET /{base_path}")
        while walker.params is not None:
            for item in walker.step(await self.request("GET", base_path, params=walker.params)):
                yield item

    async def get_request_set(self, set_id: str, fields: str | Iterable[str] | None = None) -> dict[str, Any]:
        params = {"fields": fields_param(fields, DEFAULT_SET_FIELDS)}
        result = await self.request("GET", str(set_id).strip(), params=params)
        if not isinstance(result, dict):
            raise GraphAPIError(f"expected an object from GET /{set_id}, got {type(result).__name__}")
        return result

    async def get_objects(
        self, ids: str | Iterable[str], fields: str | Iterable[str] | None = None
    ) -> dict[str, dict[str, Any]]:
        """Async twin of :meth:`GraphHook.get_objects` (multi-id ``GET /?ids=``, 50 per call)."""
        out: dict[str, dict[str, Any]] = {}
        for params in self._multi_id_calls(ids, fields, default_fields=None):
            out.update(self._check_multi(await self.request("GET", "", params=params), "GET /?ids="))
        return out

    async def get_request_sets(
        self, set_ids: str | Iterable[str], fields: str | Iterable[str] | None = None
    ) -> dict[str, dict[str, Any]]:
        """Multi-id read of request sets, 50 per call: ``{set_id: fields}``."""
        return await self.get_objects(set_ids, fields_param(fields, DEFAULT_SET_FIELDS))

    async def list_requests(
        self,
        set_id: str,
        statuses: str | Iterable[str] | None = None,
        fields: str | Iterable[str] | None = None,
        page_size: int | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        params = {"status": status_param(statuses), "fields": fields_param(fields)}
        async for item in self.paginate(f"{str(set_id).strip()}/requests", params, page_size=page_size):
            yield item

    async def cancel(self, object_id: str) -> bool:
        return is_success(await self.request("DELETE", str(object_id).strip()))
