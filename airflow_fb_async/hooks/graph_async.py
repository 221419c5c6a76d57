"""The async Graph hook, :class:`GraphAsyncHook` (``httpx``), for triggers and waiters.

The twin of :class:`~airflow_fb_async.hooks.graph.GraphHook`: the same sans-IO call (:mod:`.call`),
the same public calls (:mod:`.graph_base`), driven with ``await``. It reads its connection with
``await`` and builds its client in a worker thread: nothing blocks the event loop. Sync-only, by
design: ``batch`` and ``create_async_batch`` (their engines run threads, journals and exactly-once
reconciliation written for tasks, not for a triggerer's loop; a trigger only reads), and the Airflow
UI's connection form hooks.

Import it from :mod:`airflow_fb_async.hooks.graph` (its contracted home), off the event loop.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import certifi
import httpx

from airflow_fb_async._compat import get_async_connection, get_async_extra_dejson
from airflow_fb_async.hooks.call import GraphCall, GraphCore, HttpRequest, Outcome, Sleep
from airflow_fb_async.hooks.config import DEFAULT_CONN_ID
from airflow_fb_async.hooks.graph_base import (
    GraphHookBase,
    Item,
    Names,
    amask_config,
    check_multi,
    check_object,
    config_from_conn,
    connection_report,
    files_arg,
    multi_id_params,
)
from airflow_fb_async.hooks.insights import AsyncInsightsMixin
from airflow_fb_async.hooks.paging import start_paging
from airflow_fb_async.hooks.set_fields import is_success

if TYPE_CHECKING:
    from types import TracebackType

    from typing_extensions import Unpack

    from airflow_fb_async.hooks.call import CallOptions

__all__ = ["GraphAsyncHook"]

_BEFORE_SEND_HTTPX = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.ProxyError)


def httpx_failed_before_send(exc: BaseException) -> bool:
    """True when an ``httpx`` failure happened before the request left (safe to resend)."""
    return isinstance(exc, _BEFORE_SEND_HTTPX)


@functools.cache
def _shared_ssl_context() -> ssl.SSLContext:
    """One verifying SSL context for every async client of the process (certifi's CA bundle)."""
    return ssl.create_default_context(cafile=certifi.where())


class GraphAsyncHook(
    AsyncInsightsMixin,
    GraphHookBase[
        Coroutine[Any, Any, Any],
        AsyncIterator[Item],
        Coroutine[Any, Any, Item],
        Coroutine[Any, Any, dict[str, Item]],
        Coroutine[Any, Any, bool],
    ],
):
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
            config = config_from_conn(conn, extra, self._api_version_override)
            await amask_config(config)
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
        """Close the pooled client (a later call opens a new one); ``async with`` does it."""
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
                files=files_arg(req.files),
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
            return call.on_unusable_request(exc)
        except (httpx.TransportError, httpx.DecodingError) as exc:
            return call.on_transport_error(exc, sent=not httpx_failed_before_send(exc))
        return call.on_response(resp.status_code, resp.headers, content)

    async def _step(self, call: GraphCall, step: Sleep | HttpRequest) -> Outcome | None:
        if isinstance(step, HttpRequest):
            return await self._send(call, step)
        await self._sleep(step.seconds)
        return None

    async def request(self, method: str, path: str, **options: Unpack[CallOptions]) -> Any:
        """Async twin of :meth:`GraphHook.request` (same arguments, same retry policy)."""
        core = await self.aget_core()
        call = core.new_call(method, path, **options)
        steps = call.steps()
        step = next(steps)
        while True:
            try:
                step = steps.send(await self._step(call, step))
            except StopIteration as done:
                return done.value

    async def paginate(
        self, path: str, params: Mapping[str, Any] | None = None, page_size: int | None = None
    ) -> AsyncIterator[Item]:
        """Async twin of :meth:`GraphHook.paginate`: every item of a paged edge."""
        core = await self.aget_core()
        walker = start_paging(path, params, page_size, core.config.page_size)
        while walker.params is not None:
            for item in walker.step(await self.request("GET", walker.path, params=walker.params)):
                yield item

    async def _object(self, path: str, params: Mapping[str, Any]) -> Item:
        return check_object(await self.request("GET", path, params=params), f"GET /{path}")

    async def _objects(
        self, ids: str | Iterable[Any], fields: Names, default_fields: Sequence[str] | None
    ) -> dict[str, Item]:
        out: dict[str, Item] = {}
        for params in multi_id_params(ids, fields, default_fields):
            out.update(check_multi(await self.request("GET", "", params=params), "GET /?ids="))
        return out

    async def _flag(self, method: str, path: str, data: Mapping[str, Any] | None = None) -> bool:
        return is_success(await self.request(method, path, data=data, idempotent=True))

    async def test_connection(self) -> tuple[bool, str]:
        """Async twin of :meth:`GraphHook.test_connection` (``GET me?fields=id``; (ok, message))."""
        try:
            result = await self.request("GET", "me", params={"fields": "id"}, max_retries=1)
        except Exception as exc:
            return connection_report(None, exc, self.scrub, "")
        return connection_report(result, None, self.scrub, self.base_url)
