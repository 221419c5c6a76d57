"""What :class:`~.graph.GraphHook` and :class:`~.graph_async.GraphAsyncHook` share: the public calls,
written once.

Each public call (``get``, ``list_requests``, ``update_request_set``...) is defined here one time and
reaches Graph through five primitives that each hook implements with its own client:
``request`` (one call with the retry policy), ``paginate`` (every item of an edge), ``_object`` (a
GET answering one object), ``_objects`` (multi-id reads, 50 per call) and ``_flag`` (a write
answering ``true`` / ``{"success": true}``). The sync hook's primitives return values and iterators;
the async hook's return awaitables and async iterators, so ``await ahook.get_request_set(...)`` and
``async for item in ahook.list_requests(...)`` run the very same code. The type parameters of
:class:`GraphHookBase` say which, per hook.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from airflow_fb_async._compat import BaseHook, amask_secret, mask_secret
from airflow_fb_async.exceptions import FacebookGraphError, GraphAPIError
from airflow_fb_async.hooks.call import GraphCore
from airflow_fb_async.hooks.config import CONN_TYPE, DEFAULT_CONN_ID, GraphConfig, parse_conn_config
from airflow_fb_async.hooks.encoding import fields_param
from airflow_fb_async.hooks.ids import MULTI_ID_CHUNK, chunks, normalize_ad_account_id, unique_ids
from airflow_fb_async.hooks.scrub import install_library_log_filter
from airflow_fb_async.hooks.set_fields import DEFAULT_SET_FIELDS, status_param, update_set_data

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from airflow_fb_async._compat import Connection
    from airflow_fb_async.hooks.call import CallOptions
    from airflow_fb_async.hooks.throttle import ThrottleState

HOOK_NAME = "Facebook Graph API"

#: ``fields`` / ``statuses`` arguments: a comma-separated string or a list of names.
Names = str | Iterable[str] | None
Item = dict[str, Any]
#: ``post``'s form fields (a dict, or an encoded string) and multipart parts.
Form = Mapping[str, Any] | str | None
Files = Mapping[str, Any] | None
Text = str | None

AnswerT = TypeVar("AnswerT")  # Any / Coroutine[Any, Any, Any]
PagesT = TypeVar("PagesT")  # Iterator[Item] / AsyncIterator[Item]
ObjectT = TypeVar("ObjectT")  # Item / Coroutine[Any, Any, Item]
ObjectsT = TypeVar("ObjectsT")  # dict[str, Item] / Coroutine[Any, Any, dict[str, Item]]
FlagT = TypeVar("FlagT")  # bool / Coroutine[Any, Any, bool]

# urllib3 and httpx log request URLs; appsecret_proof rides in the query of GET/DELETE calls.
install_library_log_filter()


def mask_config(config: GraphConfig) -> None:
    """Register the secrets with Airflow's masker (task logs, supervisor)."""
    for secret in (config.token, config.app_secret):
        if secret:
            mask_secret(secret)


async def amask_config(config: GraphConfig) -> None:
    """:func:`mask_config` for the event loop."""
    for secret in (config.token, config.app_secret):
        if secret:
            await amask_secret(secret)


def config_from_conn(conn: Connection, extra: Mapping[str, Any], api_version: str | None) -> GraphConfig:
    """The hook's :class:`GraphConfig` from an Airflow connection (read sync or async)."""
    return parse_conn_config(
        conn.conn_id,
        host=conn.host,
        password=conn.password,
        extra=extra,
        schema=conn.schema,
        port=conn.port,
        api_version=api_version,
    )


def files_arg(files: Mapping[str, tuple[str, bytes, str | None]] | None) -> dict[str, Any] | None:
    """Multipart parts in the shape both clients take: ``(filename, bytes[, content_type])``."""
    if not files:
        return None
    return {k: (n, b, t) if t else (n, b) for k, (n, b, t) in files.items()}


def multi_id_params(
    ids: str | Iterable[Any], fields: Names, default_fields: Sequence[str] | None
) -> Iterator[Item]:
    """The params of each multi-id ``GET /?ids=`` call (50 ids each) reading ``ids``."""
    field_text = fields_param(fields, default_fields)
    for chunk in chunks(unique_ids(ids), MULTI_ID_CHUNK):
        params = {"ids": ",".join(chunk)}
        if field_text:
            params["fields"] = field_text
        yield params


def check_multi(result: Any, where: str) -> dict[str, Item]:
    """A multi-id answer as ``{id: object}`` (GraphAPIError when it is not keyed by id)."""
    if not isinstance(result, Mapping):
        raise GraphAPIError(f"expected an object keyed by id from {where}, got {type(result).__name__}")
    return {str(k): v for k, v in result.items()}


def check_object(result: Any, where: str) -> Item:
    """A one-object answer (GraphAPIError when it is not an object)."""
    if not isinstance(result, dict):
        raise GraphAPIError(f"expected an object from {where}, got {type(result).__name__}")
    return result


def connection_report(
    result: Any, exc: BaseException | None, scrub: Callable[[Any], str], base_url: str
) -> tuple[bool, str]:
    """``test_connection``'s (ok, message) for the answer to ``GET me`` or its error; never the token."""
    if exc is None:
        ident = result.get("id") if isinstance(result, Mapping) else None
        return True, f"Connected to {base_url} as id {ident}"
    text = f"{type(exc).__name__}: {exc}"
    try:
        text = scrub(text)
    except Exception:
        text = f"{type(exc).__name__}"
    return False, text


class GraphHookBase(BaseHook, Generic[AnswerT, PagesT, ObjectT, ObjectsT, FlagT]):
    """Connection attributes, config, scrubbing, and every public call both hooks have."""

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
        """The connection's parsed settings (:class:`~.config.GraphConfig`)."""
        return self._ready_core.config

    def scrub(self, text: Any) -> str:
        """``text`` without the token (raw / URL-encoded), the app secret, or any
        ``access_token=`` / ``appsecret_proof=`` value."""
        return self._ready_core.scrub(text)

    @property
    def api_version(self) -> str:
        """The Graph API version every call uses (``v25.0`` style)."""
        return self.config.api_version

    @property
    def base_url(self) -> str:
        """``{host}/{api_version}``: what every path is relative to."""
        return self.config.base_url

    @property
    def throttle(self) -> ThrottleState:
        """The process-wide throttle state, viewed with this connection's knobs."""
        return self._ready_core.throttle

    # -- the primitives each hook implements --------------------------------------------------------

    def request(self, method: str, path: str, **options: Unpack[CallOptions]) -> AnswerT:
        """One Graph call with the retry policy; the parsed JSON answer (None for an empty body).

        :param path: relative to ``{host}/{api_version}/`` (``""`` is the root); a query in it is kept.
        :param options: :class:`~.call.CallOptions`: ``params``, ``data``, ``files``, ``etag``,
            ``idempotent``, ``raise_codes``, ``max_retries``, ``timeout``.
        :raises GraphAPIError: (a typed subclass) when Graph answers an error or retries run out;
            :class:`GraphAmbiguousError` when a call that is not repeatable had an uncertain outcome.
        """
        raise NotImplementedError

    def paginate(
        self, path: str, params: Mapping[str, Any] | None = None, page_size: int | None = None
    ) -> PagesT:
        """Every item of a paged edge, following ``paging.cursors.after`` until no ``next``.

        ``page_size`` sets ``limit`` (default: the connection's ``page_size`` extra).
        """
        raise NotImplementedError

    def _object(self, path: str, params: Mapping[str, Any]) -> ObjectT:
        raise NotImplementedError

    def _objects(
        self, ids: str | Iterable[Any], fields: Names, default_fields: Sequence[str] | None
    ) -> ObjectsT:
        raise NotImplementedError

    def _flag(self, method: str, path: str, data: Mapping[str, Any] | None = None) -> FlagT:
        raise NotImplementedError

    # -- plain calls --------------------------------------------------------------------------------

    def get(
        self, path: str, params: Mapping[str, Any] | None = None, etag: bool | str | None = None
    ) -> AnswerT:
        """``GET path``: one read. ``etag=True`` answers from the hook's ETag cache on 304 (the data,
        never an empty 304); a string sends that ETag."""
        return self.request("GET", path, params=params, etag=etag)

    def post(
        self, path: str, data: Form = None, files: Files = None, idempotent: bool | None = None
    ) -> AnswerT:
        """``POST path``. ``idempotent`` (default: an update ``POST <id>`` yes, a create on an edge
        no) says whether it may be resent after an uncertain outcome; when not, such an outcome
        raises :class:`GraphAmbiguousError` instead."""
        return self.request("POST", path, data=data, files=files, idempotent=idempotent)

    def delete(self, path: str, params: Mapping[str, Any] | None = None) -> AnswerT:
        """``DELETE path`` (repeatable: resent after an uncertain outcome)."""
        return self.request("DELETE", path, params=params)

    def get_objects(self, ids: str | Iterable[str], fields: Names = None) -> ObjectsT:
        """Read any objects with multi-id ``GET /?ids=`` (50 per call): ``{id: fields}``.

        Without ``fields`` each object answers Graph's default fields for its kind.
        """
        return self._objects(ids, fields, None)

    # -- async request sets -------------------------------------------------------------------------

    def get_request_set(self, set_id: str, fields: Names = None) -> ObjectT:
        """One request set (``GET <set_id>``); ``fields`` defaults to the name, ``is_completed`` and
        every count."""
        return self._object(str(set_id).strip(), {"fields": fields_param(fields, DEFAULT_SET_FIELDS)})

    def get_request_sets(self, set_ids: str | Iterable[str], fields: Names = None) -> ObjectsT:
        """Read many request sets with multi-id ``GET /?ids=`` (50 per call): ``{set_id: fields}``.

        ``fields`` defaults to the name, ``is_completed`` and every count.
        """
        return self._objects(set_ids, fields, DEFAULT_SET_FIELDS)

    def list_requests(
        self, set_id: str, statuses: Names = None, fields: Names = None, page_size: int | None = None
    ) -> PagesT:
        """The requests of a set (``GET <set_id>/requests``), optionally filtered by status."""
        params = {"status": status_param(statuses), "fields": fields_param(fields)}
        return self.paginate(f"{str(set_id).strip()}/requests", params, page_size=page_size)

    def list_request_sets(
        self, ad_account_id: str, is_completed: bool | None = None, fields: Names = None
    ) -> PagesT:
        """Request sets of an ad account (``act_<id>/asyncadrequestsets``); ``is_completed`` filters."""
        params: dict[str, Any] = {"fields": fields_param(fields)}
        if is_completed is not None:
            params["is_completed"] = 1 if is_completed else 0
        return self.paginate(f"{normalize_ad_account_id(ad_account_id)}/asyncadrequestsets", params)

    def list_ad_set_requests(self, ad_set_id: str, statuses: Names = None, fields: Names = None) -> PagesT:
        """Async requests touching an ad set (``<ad_set_id>/asyncadrequests``), by status."""
        params = {"status": status_param(statuses), "fields": fields_param(fields)}
        return self.paginate(f"{str(ad_set_id).strip()}/asyncadrequests", params)

    def list_account_requests(
        self, ad_account_id: str, statuses: Names = None, fields: Names = None, page_size: int | None = None
    ) -> PagesT:
        """Every async request of an ad account, across its sets (``act_<id>/async_requests``),
        optionally filtered by status: what an account has pending, failed or done."""
        params = {"status": status_param(statuses), "fields": fields_param(fields)}
        path = f"{normalize_ad_account_id(ad_account_id)}/async_requests"
        return self.paginate(path, params, page_size=page_size)

    def update_request_set(
        self, set_id: str, name: Text = None, notification_uri: Text = None, notification_mode: Text = None
    ) -> FlagT:
        """Update only the given fields of a set (``POST <set_id>``); True on success."""
        return self._flag(
            "POST", str(set_id).strip(), update_set_data(name, notification_uri, notification_mode)
        )

    def cancel(self, object_id: str) -> FlagT:
        """Cancel a request or a whole set (``DELETE <id>``); True on success."""
        return self._flag("DELETE", str(object_id).strip())
