"""The Facebook Graph / Marketing API hooks: :class:`GraphHook` (sync, ``requests``) here, and
:class:`~airflow_fb_async.hooks.graph_async.GraphAsyncHook` (async, ``httpx``, for triggers),
importable from here too (its contracted home).

Both run the same sans-IO call (:mod:`.call`): one connection parsing path (:mod:`.config`), one
request builder (token in ``Authorization: OAuth``, ``appsecret_proof``), one error parser
(:mod:`.errors`), one retry policy, one process-wide throttle state and one pagination step
(:mod:`.paging`); their public calls are written once (:mod:`.graph_base`). They only differ in the
HTTP client and in how they sleep.

Secrets: the token travels in a header (and, for the standard batch ``POST /``, in the form body),
never in a URL; it is registered with Airflow's secret masker, and every exception message and log
line of this package passes through :meth:`GraphHook.scrub`.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import requests
import urllib3.exceptions
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry
from urllib3.util.ssl_match_hostname import CertificateError as HostnameMismatchError

from airflow_fb_async.hooks import connection_form
from airflow_fb_async.hooks.batch import run_batch
from airflow_fb_async.hooks.call import GraphCall, GraphCore, HttpRequest, Outcome, Sleep
from airflow_fb_async.hooks.config import DEFAULT_CONN_ID
from airflow_fb_async.hooks.encoding import FORM_CONTENT_TYPE, encode_form
from airflow_fb_async.hooks.graph_async import GraphAsyncHook
from airflow_fb_async.hooks.graph_base import (
    GraphHookBase,
    Item,
    Names,
    check_multi,
    check_object,
    config_from_conn,
    connection_report,
    files_arg,
    mask_config,
    multi_id_params,
)
from airflow_fb_async.hooks.insights import InsightsMixin
from airflow_fb_async.hooks.paging import start_paging
from airflow_fb_async.hooks.set_fields import is_success

if TYPE_CHECKING:
    from types import TracebackType

    from typing_extensions import Unpack

    from airflow_fb_async.hooks.batch_journal import BatchJournal
    from airflow_fb_async.hooks.call import CallOptions

__all__ = ["GraphAsyncHook", "GraphHook"]


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


def _keep_headers(request: requests.PreparedRequest) -> requests.PreparedRequest:
    """A requests auth that changes nothing (see ``GraphHook.get_conn``)."""
    return request


class GraphHook(InsightsMixin, GraphHookBase[Any, Iterator[Item], Item, dict[str, Item], bool]):
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
                    config = config_from_conn(conn, conn.extra_dejson, self._api_version_override)
                    mask_config(config)
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
        """Close the pooled session (a later call opens a new one); ``with GraphHook() as hook`` does it."""
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
                files=files_arg(req.files),
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
            return call.on_unusable_request(exc)
        return call.on_response(resp.status_code, resp.headers, content)

    def _step(self, call: GraphCall, step: Sleep | HttpRequest) -> Outcome | None:
        if isinstance(step, HttpRequest):
            return self._send(call, step)
        self._sleep(step.seconds)
        return None

    def request(self, method: str, path: str, **options: Unpack[CallOptions]) -> Any:
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
        call = self.core.new_call(method, path, **options)
        steps = call.steps()
        step = next(steps)
        while True:
            try:
                step = steps.send(self._step(call, step))
            except StopIteration as done:
                return done.value

    def paginate(
        self, path: str, params: Mapping[str, Any] | None = None, page_size: int | None = None
    ) -> Iterator[Item]:
        """Yield every item of a paged edge, following ``paging.cursors.after`` until no ``next``."""
        walker = start_paging(path, params, page_size, self.core.config.page_size)
        while walker.params is not None:
            yield from walker.step(self.request("GET", walker.path, params=walker.params))

    def _object(self, path: str, params: Mapping[str, Any]) -> Item:
        return check_object(self.request("GET", path, params=params), f"GET /{path}")

    def _objects(
        self, ids: str | Iterable[Any], fields: Names, default_fields: Sequence[str] | None
    ) -> dict[str, Item]:
        out: dict[str, Item] = {}
        for params in multi_id_params(ids, fields, default_fields):
            out.update(check_multi(self.request("GET", "", params=params), "GET /?ids="))
        return out

    def _flag(self, method: str, path: str, data: Mapping[str, Any] | None = None) -> bool:
        return is_success(self.request(method, path, data=data, idempotent=True))

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

        ``options`` are the other :class:`~airflow_fb_async.hooks.batch.BatchSettings` fields
        (``max_rounds``, ``chunk_size``, ``progress``...), checked before any call.
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

    # -- Airflow UI -------------------------------------------------------------------------------

    def test_connection(self) -> tuple[bool, str]:
        """``GET me?fields=id``; (ok, message), the message never holds the token."""
        try:
            result = self.request("GET", "me", params={"fields": "id"}, max_retries=1)
        except Exception as exc:
            return connection_report(None, exc, self.scrub, "")
        return connection_report(result, None, self.scrub, self.base_url)
